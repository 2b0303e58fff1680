import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { after } from 'node:test';
import { Identity, TunnelKeyPair, TunnelSession, signAuth } from '../../src/crypto/index.js';
import { makeAddr } from '../../src/protocol/address.js';
import { Proto, encodePacket, makePacket, type Packet } from '../../src/protocol/packet.js';
import { encodePacketBatch } from '../../src/protocol/packet-batch.js';
import { encodePila, encodePilmHeader, encodePils, MAGIC_PILM } from '../../src/protocol/tunnel.js';
import { RegistryKeys } from '../../src/registry-keys.js';
import { Tunnel, type TunnelOptions } from '../../src/tunnel/index.js';

/** Returns `track`: everything passed to it is closed after the test file's tests have run. */
export function closeAfterAll(): <T extends { close(): Promise<void> }>(x: T) => T {
  const open: { close(): Promise<void> }[] = [];
  after(async () => {
    await Promise.all(open.map((x) => x.close()));
  });
  return (x) => {
    open.push(x);
    return x;
  };
}

/** A stand-in for the registry: node id → Ed25519 public key. */
export class KeyDirectory {
  readonly keys = new Map<number, Uint8Array>();
  lookups = 0;
  readonly lookup = async (nodeId: number): Promise<Uint8Array | undefined> => {
    this.lookups += 1;
    return this.keys.get(nodeId);
  };
}

export interface NodeOptions extends Partial<Omit<TunnelOptions, 'keys'>> {
  identity?: Identity;
}

export async function openNode(dir: KeyDirectory, nodeId: number, options: NodeOptions = {}): Promise<Tunnel> {
  const identity = options.identity ?? Identity.generate();
  dir.keys.set(nodeId, identity.publicKey);
  const tunnel = await Tunnel.open({ listen: '127.0.0.1:0', ...options, identity, keys: new RegistryKeys(dir.lookup) });
  tunnel.setNodeId(nodeId);
  return tunnel;
}

export function datagram(src: number, dst: number, text: string, port = 1000): Packet {
  return makePacket({
    flags: 0,
    protocol: Proto.Datagram,
    src: makeAddr(0, src),
    dst: makeAddr(0, dst),
    srcPort: port,
    dstPort: port,
    seq: 0,
    ack: 0,
    window: 0,
    payload: Buffer.from(text),
  });
}

export function endpointOf(tunnel: Tunnel, host = '127.0.0.1'): string {
  return host.includes(':') ? `[${host}]:${tunnel.localPort}` : `${host}:${tunnel.localPort}`;
}

/** Every payload the tunnel delivers, as text, with the tunnel sender. */
export function collect(tunnel: Tunnel): { from: number; text: string }[] {
  const got: { from: number; text: string }[] = [];
  tunnel.on('packet', (p, from) => got.push({ from, text: Buffer.from(p.payload).toString() }));
  return got;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Received {
  readonly data: Buffer;
  readonly from: RemoteInfo;
}

/** A bare UDP socket that records what it receives. */
export class RawSocket {
  readonly received: Received[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('message', (data, from) => this.received.push({ data, from }));
  }

  static async open(host = '127.0.0.1'): Promise<RawSocket> {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve) => socket.bind(0, host, () => resolve()));
    return new RawSocket(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get endpoint(): string {
    const a = this.socket.address();
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  send(bytes: Uint8Array, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(bytes, port, host, (err) => (err ? reject(err) : resolve())),
    );
  }

  framesOf(magic: string): Buffer[] {
    return this.received.filter((r) => r.data.subarray(0, 4).toString('latin1') === magic).map((r) => r.data);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A peer built from the raw primitives, to craft frames a well-behaved tunnel never sends. */
export class RawPeer {
  readonly keyPair = TunnelKeyPair.generate();
  session: TunnelSession | undefined;

  constructor(
    readonly raw: RawSocket,
    readonly nodeId: number,
    readonly identity: Identity,
  ) {}

  pila(nodeId = this.nodeId, identity = this.identity): Uint8Array {
    const x25519Public = this.keyPair.publicKey;
    return encodePila({
      senderNode: nodeId,
      x25519Public,
      ed25519Public: identity.publicKey,
      signature: signAuth(identity, nodeId, x25519Public),
    });
  }

  /** Sets up the send session for the tunnel whose X25519 key is given. */
  keyFor(tunnelX25519: Uint8Array): TunnelSession {
    this.session = new TunnelSession(this.keyPair.tunnelKey(tunnelX25519));
    return this.session;
  }

  pils(packet: Packet, senderNode = this.nodeId): Uint8Array {
    if (!this.session) throw new Error('no session');
    const sealed = this.session.seal(encodePacket(packet));
    return encodePils({ senderNode, nonce: sealed.nonce, sealed: sealed.sealed });
  }

  /** A PILM frame carrying `packets`, as a pilot-ts tunnel seals it. */
  pilm(packets: readonly Packet[], senderNode = this.nodeId): Buffer {
    if (!this.session) throw new Error('no session');
    const { nonce, chunks } = this.session.sealParts([encodePacketBatch(packets)], MAGIC_PILM);
    return Buffer.concat([encodePilmHeader(senderNode, nonce), ...chunks]);
  }
}

/** A tunnel (node 1) and a hand-driven peer (node 3) that completed the key exchange; the caller closes both. */
export async function connectRawPeer(): Promise<{ t: Tunnel; peer: RawPeer; got: { from: number; text: string }[] }> {
  const dir = new KeyDirectory();
  const t = await openNode(dir, 1);
  const identity = Identity.generate();
  dir.keys.set(3, identity.publicKey);
  const raw = await RawSocket.open();
  const peer = new RawPeer(raw, 3, identity);
  const got = collect(t);
  const established = new Promise((resolve) => t.once('established', resolve));
  await raw.send(peer.pila(), t.localPort);
  await established;
  peer.keyFor(t.x25519PublicKey);
  return { t, peer, got };
}

/** Forwards between a tunnel and one peer endpoint, keeping a copy of every datagram from the tunnel. */
export class TapProxy {
  readonly fromA: Buffer[] = [];
  private constructor(
    readonly raw: RawSocket,
    aPort: number,
    private readonly bPort: number,
  ) {
    raw.socket.on('message', (data, from) => {
      if (from.port === aPort) {
        this.fromA.push(data);
        raw.socket.send(data, bPort, '127.0.0.1');
      } else {
        raw.socket.send(data, aPort, '127.0.0.1');
      }
    });
  }

  static async between(aPort: number, bPort: number): Promise<TapProxy> {
    return new TapProxy(await RawSocket.open(), aPort, bPort);
  }

  get endpoint(): string {
    return this.raw.endpoint;
  }

  /** Re-sends a captured datagram to B as if it came from A. */
  replay(frame: Uint8Array): Promise<void> {
    return this.raw.send(frame, this.bPort);
  }

  framesOf(magic: string): Buffer[] {
    return this.fromA.filter((d) => d.subarray(0, 4).toString('latin1') === magic);
  }
}
