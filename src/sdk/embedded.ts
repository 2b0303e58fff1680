import { EventEmitter } from 'node:events';
import { PilotError, toPilotError } from '../errors.js';
import type { Addr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { Datagram, DialOptions, PilotConn } from '../pilot-net.js';
import type { DatagramOptions, Health, NodeCore, PilotNode } from '../pilot-node.js';
import { DatagramInbox, healthOf } from './datagram-inbox.js';
import { TrustCalls } from './trust-calls.js';
import { MAX_DATAGRAM } from './driver.js';
import { parseDaemonInfo, type DaemonInfo, type OutgoingEntry, type PendingEntry, type TrustedEntry } from './info.js';
import { Listener } from './listener.js';
import { checkPort, checkU32, target, toAddr } from './validate.js';

/**
 * How long a connection the application destroyed after ending it may take to finish its close
 * before it is reset: what a daemon allows a connection its IPC client closed.
 */
const CLOSE_LINGER_MS = 30_000;

/**
 * An application's connection behaves as through a daemon: no Nagle (writes of one turn already
 * leave together), and a destroy after end() lets the written data and FIN go out.
 */
function adopt(conn: PilotConn): PilotConn {
  conn.setNoDelay?.(true);
  conn.releaseOnDestroy?.(CLOSE_LINGER_MS);
  return conn;
}

/** The failure of one call, named like the Driver names it, with the code of the layer that knew. */
function inContext(err: unknown, context: string): PilotError {
  const e = toPilotError(err);
  return new PilotError(e.code, `${context}: ${e.message}`, e.hint, { cause: err });
}

async function named<T>(context: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw inContext(err, context);
  }
}

/**
 * A node running inside this process (see `createNode`), with the API of `Driver`: the same calls
 * take the same arguments and give the same results, without a daemon or an IPC socket between
 * the application and the network.
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface below only types the events of EventEmitter's own methods.
export class EmbeddedNode extends EventEmitter implements PilotNode {
  private readonly inbox = new DatagramInbox();
  private readonly trust = new TrustCalls((op, context) => this.call(context, () => this.core.handshake(op)));
  private readonly unsubscribe: () => void;
  private closing: Promise<void> | undefined;

  constructor(private readonly core: NodeCore) {
    super();
    this.unsubscribe = core.onDatagram((d) => this.deliver(d));
  }

  get localAddr(): Addr {
    return this.core.localAddr;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  async info(): Promise<DaemonInfo> {
    this.open();
    return parseDaemonInfo(this.core.info());
  }

  health(): Promise<Health> {
    return healthOf(() => this.info(), this.localAddr);
  }

  async dial(addr: Addr | string, port: number, options: DialOptions = {}): Promise<PilotConn> {
    const remote = toAddr(addr);
    checkPort(port);
    this.open();
    // One promise step between the stack's answer and the caller: a dial is on a request's path.
    return this.core.dial(remote, port, { ...options, noDelay: true }).then(adopt, (err: unknown) => {
      throw inContext(err, `dial ${target(remote, port)}`);
    });
  }

  /** Accepted connections, delivered as the Driver's listener delivers them; `close()` unbinds the port. */
  async listen(port: number): Promise<Listener<PilotConn>> {
    checkPort(port);
    this.open();
    const bound = await named(`listen on port ${port}`, () => this.core.listen(port));
    const listener = new Listener<PilotConn>(port, () => void bound.close());
    bound.on('connection', (conn) => {
      if (!listener.deliver(adopt(conn))) conn.destroy();
    });
    // The node stopping closes its ports.
    bound.on('close', () => listener.shutdown(null));
    return listener;
  }

  async sendTo(addr: Addr | string, port: number, data: Uint8Array): Promise<void> {
    const to = toAddr(addr);
    checkPort(port);
    if (data.length > MAX_DATAGRAM)
      throw new PilotError(
        'too_large',
        `datagram of ${data.length} bytes exceeds the maximum of ${MAX_DATAGRAM} bytes`,
      );
    this.open();
    await this.core.sendTo(to, port, data);
  }

  datagrams(options: DatagramOptions = {}): AsyncIterable<Datagram> {
    return this.inbox.open(options);
  }

  handshake(nodeId: number, justification = ''): Promise<JsonObject> {
    return this.trust.handshake(nodeId, justification);
  }

  approve(nodeId: number): Promise<JsonObject> {
    return this.trust.approve(nodeId);
  }

  reject(nodeId: number, reason = ''): Promise<JsonObject> {
    return this.trust.reject(nodeId, reason);
  }

  untrust(nodeId: number): Promise<JsonObject> {
    return this.trust.untrust(nodeId);
  }

  pending(): Promise<PendingEntry[]> {
    return this.trust.pending();
  }

  trusted(): Promise<TrustedEntry[]> {
    return this.trust.trusted();
  }

  outgoing(): Promise<OutgoingEntry[]> {
    return this.trust.outgoing();
  }

  async resolveHostname(name: string): Promise<JsonObject> {
    if (name === '') throw new PilotError('invalid_argument', 'hostname is empty');
    return this.call(`resolve ${name}`, () => this.core.resolveHostname(name));
  }

  setHostname(name: string): Promise<JsonObject> {
    return this.call('set hostname', () => this.core.setHostname(name));
  }

  setVisibility(isPublic: boolean): Promise<JsonObject> {
    return this.call('set visibility', () => this.core.setVisibility(isPublic));
  }

  async setTags(tags: string[]): Promise<JsonObject> {
    if (tags.length > 3) throw new PilotError('invalid_argument', `at most 3 tags, got ${tags.length}`);
    return this.call('set tags', () => this.core.setTags(tags));
  }

  setWebhook(url: string): Promise<JsonObject> {
    return this.call('set webhook', () => this.core.setWebhook(url));
  }

  setTaskExec(enabled: boolean): Promise<JsonObject> {
    return this.call('set task exec', () => this.core.setTaskExec(enabled));
  }

  deregister(): Promise<JsonObject> {
    return this.call('deregister', () => this.core.deregister());
  }

  async disconnect(connId: number): Promise<void> {
    checkU32(connId, 'connection id');
    this.open();
    // An unknown id is no error, as with a daemon (its Close of an unknown id is answered CloseOK).
    this.core.disconnect(connId);
  }

  /** Stops the node: its connections and ports close, its tunnel and registry session end. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe();
      try {
        await this.core.close();
      } finally {
        this.inbox.close(null);
        this.emit('close', null);
      }
    })();
    return this.closing;
  }

  private deliver(d: Datagram): void {
    this.emit('datagram', d);
    this.inbox.deliver(d);
  }

  private open(): void {
    if (this.closed) throw new PilotError('not_running', 'the node has been closed');
  }

  private async call(context: string, op: () => Promise<JsonObject>): Promise<JsonObject> {
    this.open();
    return named(context, op);
  }
}

export interface EmbeddedNode {
  on(event: 'datagram', listener: (datagram: Datagram) => void): this;
  on(event: 'error', listener: (err: PilotError) => void): this;
  on(event: 'close', listener: (err: PilotError | null) => void): this;
  once(event: 'datagram', listener: (datagram: Datagram) => void): this;
  once(event: 'error', listener: (err: PilotError) => void): this;
  once(event: 'close', listener: (err: PilotError | null) => void): this;
  off(event: 'datagram', listener: (datagram: Datagram) => void): this;
  off(event: 'error', listener: (err: PilotError) => void): this;
  off(event: 'close', listener: (err: PilotError | null) => void): this;
}
