import type { NatMapping } from '../protocol/nat-probe.js';
import { PATH_PROBE_REPLY, PATH_PROBE_REQUEST } from '../protocol/tunnel.js';
import type { BeaconSession } from './beacon-session.js';
import { endpointEquals, isLoopbackHost, type UdpEndpoint } from './endpoint.js';
import type { Handshake } from './handshake.js';
import { IntervalLimiter } from './limits.js';
import type { PeerBook } from './peer-book.js';
import type { PeerCrypto } from './peer-crypto.js';
import type { PeerState } from './peer-table.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';

/**
 * Keeps the path to each peer working: probes of a relayed peer's direct path (with coordinated
 * punches), answers to punches, checks of a direct path gone silent, the move to the relay when a
 * key exchange or a path stalls, the move back when the direct path answers, keep-alives that hold
 * NAT mappings, and the re-punching after our own endpoint changed.
 */
export class PathKeeper {
  readonly #probeAnswers = new IntervalLimiter<number>(policy.PROBE_ANSWER_INTERVAL_MS, policy.MAX_PEERS);
  readonly #punchAnswers = new IntervalLimiter<number>(policy.PUNCH_ANSWER_INTERVAL_MS, policy.MAX_PEERS);
  /** When our own endpoint (as the beacon sees it) last changed (0: never). */
  #reboundAt = 0;
  /** Peers to punch and probe again once our proof at a new endpoint has had time to land. */
  #rebindChecks: { at: number; nodes: number[] }[] = [];
  /** When a check of a silent path last asked the beacon where it sees us. */
  #pathCheckDiscoverAt = 0;
  /** The mapping of the NAT in front of us, when a detection found it. */
  natMapping: NatMapping | undefined;

  constructor(
    private readonly book: PeerBook,
    private readonly beacon: BeaconSession,
    private readonly handshake: Handshake,
  ) {}

  requestPunch(target: number, now: number): void {
    this.beacon.requestPunch(this.book.nodeId, target, now);
  }

  /** A path probe: a request heard directly is answered directly (at most every PROBE_ANSWER_INTERVAL_MS). */
  onProbe(peer: PeerState, crypto: PeerCrypto, kind: number, origin: Origin, now: number): void {
    if (kind !== PATH_PROBE_REQUEST && kind !== PATH_PROBE_REPLY)
      return this.book.out.drop('malformed', origin.endpoint, peer.nodeId);
    peer.probes = true;
    if (kind === PATH_PROBE_REQUEST && origin.relayFrom === undefined && this.#probeAnswers.allow(peer.nodeId, now))
      this.#sendProbe(peer, crypto, PATH_PROBE_REPLY, origin.endpoint, now);
  }

  /**
   * A first probe on a fresh direct session: a pilot-ts peer answers it, and from then on a silent
   * path to it is known to be broken (and may be relayed); a Go peer drops it.
   */
  greet(peer: PeerState, now: number): void {
    if (peer.probes || peer.relay || !peer.crypto || !peer.endpoint || isLoopbackHost(peer.endpoint.host)) return;
    this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint, now);
  }

  /** Seals one probe byte and sends it straight to `to`, whatever the peer's path. */
  #sendProbe(peer: PeerState, crypto: PeerCrypto, kind: number, to: UdpEndpoint, now: number): void {
    peer.lastSentAt = now;
    this.book.out.deliver(this.book.sealPils(crypto, Uint8Array.of(kind)), to, 'probe');
  }

  /**
   * A PILP carrying a node id (pilot-ts; the reference's carries none): the node punched towards us
   * from that address. If we are still trying to reach it, answer there at once: our key exchange
   * when it has none yet, a path probe when it is relayed. Nothing is learnt from the unauthenticated
   * datagram itself: the endpoint moves only when an authenticated answer arrives from it.
   */
  onPunch(data: Uint8Array, origin: Origin, now: number): void {
    if (origin.relayFrom !== undefined || data.length < 8) return;
    const node = Buffer.from(data.buffer, data.byteOffset, data.length).readUInt32BE(4);
    const peer = node === 0 || node === this.book.nodeId ? undefined : this.book.peers.get(node);
    if (!peer || !this.book.encrypt) return;
    // A direct peer is answered only while its path is in doubt: it is silent, or we just moved.
    const doubted =
      (peer.unansweredSince !== 0 && now - peer.unansweredSince >= policy.SILENCE_MS) ||
      (this.#reboundAt !== 0 && now - this.#reboundAt <= policy.REBIND_PUNCH_MS);
    if (peer.crypto && !peer.relay && !doubted) return;
    if (!this.#punchAnswers.allow(node, now)) return;
    if (!peer.crypto) this.handshake.answerPunch(node, origin.endpoint, now);
    else this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, origin.endpoint, now);
  }

  /**
   * The beacon saw us at a new endpoint (our NAT rebound, or our address changed): prove our id to
   * it there (it keeps a proven node where it proved itself, and refuses our punch requests and
   * relayed frames from elsewhere), then have the peers in use punch towards the new endpoint, so
   * that their NATs let our traffic in and they follow it.
   */
  onObserved(endpoint: string, previous: string | undefined, now: number): void {
    if (previous !== undefined && previous !== endpoint) {
      this.#reboundAt = now;
      this.book.log.info(
        { previous, endpoint },
        'the beacon sees us at a new endpoint; proving our id there and punching to our peers again',
      );
      if (this.book.nodeId !== 0) this.beacon.register(this.book.nodeId, now);
      const nodes = [...this.book.peers.values()]
        .filter(
          (p) =>
            p.crypto &&
            !p.relay &&
            p.endpoint &&
            now - p.lastPacketAt <= policy.PEER_IN_USE_MS &&
            !isLoopbackHost(p.endpoint.host),
        )
        .map((p) => p.nodeId);
      // After the proof (a round trip or two): a punch request and a probe for each.
      this.#rebindChecks.push({ at: now + policy.REBIND_CHECK_DELAY_MS, nodes });
    }
    this.book.out.emit({ type: 'observed-endpoint', args: [{ endpoint }] });
  }

  nextTimeout(): number | undefined {
    let at: number | undefined;
    for (const c of this.#rebindChecks) if (at === undefined || c.at < at) at = c.at;
    return at;
  }

  /** Runs the checks due after a rebinding, then the periodic work of one tick. */
  handleTimeout(now: number, tick: boolean): void {
    if (this.#rebindChecks.length > 0) {
      const due = this.#rebindChecks.filter((c) => now >= c.at);
      this.#rebindChecks = this.#rebindChecks.filter((c) => now < c.at);
      for (const check of due) this.#punchAgain(check.nodes, now);
    }
    if (!tick) return;
    this.#probeRelayed(now);
    this.#checkSilentPaths(now);
    this.#relayStalled(now);
    this.#keepalive(now);
  }

  #punchAgain(nodes: readonly number[], now: number): void {
    for (const node of nodes) {
      const peer = this.book.peers.get(node);
      if (!peer?.crypto || peer.relay || !peer.endpoint) continue;
      this.requestPunch(node, now);
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint, now);
    }
  }

  /** Relayed peers whose direct endpoint is known are probed, with back-off. */
  #probeRelayed(now: number): void {
    for (const node of this.book.relayed) {
      const peer = this.book.peers.get(node);
      if (!peer?.relay) {
        this.book.relayed.delete(node);
        continue;
      }
      if (now < peer.probeAt || !peer.crypto) continue;
      // The beacon has both sides punch at once: the peer's PILP (with its id) lets us probe the
      // address it comes from, which is where its NAT expects us.
      if (this.book.nodeId !== 0) this.requestPunch(node, now);
      if (peer.endpoint && !endpointEquals(peer.endpoint, this.book.beacon))
        this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint, now);
      peer.probeIntervalMs = Math.min(
        Math.max(peer.probeIntervalMs, policy.PROBE_FIRST_MS) * 2,
        policy.PROBE_MAX_MS,
        policy.PROBE_CAP_MS,
      );
      peer.probeAt = now + peer.probeIntervalMs;
    }
  }

  /**
   * A direct path that stopped answering while we send: ask the beacon where it sees us (a rebinding
   * shows there), have both sides punch again and probe; relay a peer that answers probes if this
   * goes on (the relay is left again as soon as the direct path answers).
   */
  #checkSilentPaths(now: number): void {
    const { book } = this;
    for (const peer of book.peers.values()) {
      if (!peer.crypto || peer.relay || !peer.endpoint || peer.unansweredSince === 0 || now < peer.checkAt) continue;
      if (now - peer.unansweredSince < policy.SILENCE_MS || now - peer.lastPacketAt > policy.PATH_IDLE_MS) continue;
      if (isLoopbackHost(peer.endpoint.host)) continue;
      if (peer.checkSince === 0) {
        peer.checkSince = now;
        book.log.info(
          { node: peer.nodeId, silent_ms: now - peer.unansweredSince },
          'no answer on the direct path; checking it',
        );
      } else if (peer.probes && book.beacon && now - peer.checkSince >= policy.SILENCE_RELAY_MS) {
        book.log.info({ node: peer.nodeId }, 'direct path still silent; relaying through the beacon while probing it');
        book.markRelay(peer, now);
        continue;
      }
      peer.checkAt = now + policy.PATH_CHECK_MS;
      if (book.nodeId !== 0 && book.beacon) {
        if (now - this.#pathCheckDiscoverAt >= policy.PATH_CHECK_MS) {
          this.#pathCheckDiscoverAt = now;
          this.beacon.keepalive(book.nodeId, now);
        }
        this.requestPunch(peer.nodeId, now);
      }
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint, now);
    }
  }

  /** Key exchanges unanswered straight from the peer for long enough go through the relay. */
  #relayStalled(now: number): void {
    const { book } = this;
    if (!book.beacon) return;
    const after = this.natMapping === 'endpoint-dependent' ? policy.RELAY_AFTER_SYMMETRIC_MS : policy.RELAY_AFTER_MS;
    for (const node of book.pending.nodes()) {
      const peer = book.peers.get(node);
      if (!peer || peer.crypto || peer.relay || peer.exchangeSince === 0 || now - peer.exchangeSince < after) continue;
      if (!peer.endpoint || isLoopbackHost(peer.endpoint.host)) continue;
      book.log.info({ node }, 'no key exchange on the direct path; relaying through the beacon while punching goes on');
      book.markRelay(peer, now);
      this.handshake.sendPila(peer, now, true);
    }
  }

  /**
   * Keep-alives that hold NAT mappings: towards the beacon (so punch commands and relayed frames
   * reach us), and towards peers in use, each only when nothing else went there for KEEPALIVE_MS.
   */
  #keepalive(now: number): void {
    const { book } = this;
    if (book.nodeId !== 0 && book.beacon && now - this.beacon.lastSentAt >= policy.KEEPALIVE_MS)
      this.beacon.keepalive(book.nodeId, now);
    for (const peer of book.peers.values()) {
      if (!peer.crypto || peer.relay || !peer.endpoint || now - peer.lastPacketAt > policy.PEER_IN_USE_MS) continue;
      if (now - peer.lastSentAt < policy.KEEPALIVE_MS || isLoopbackHost(peer.endpoint.host)) continue;
      // A sealed probe reply: answered by nobody, dropped by a Go peer.
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REPLY, peer.endpoint, now);
    }
  }

  clear(): void {
    this.#rebindChecks = [];
  }
}
