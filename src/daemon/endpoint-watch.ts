import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import type { Tunnel } from '../tunnel/tunnel.js';

/** NAT behaviour is checked again this often (and when the beacon sees us at a new endpoint). */
const NAT_RECHECK_MS = 10 * 60_000;
/** An endpoint that says nothing about how others reach us. */
const UNROUTABLE_ENDPOINT = /^(127\.|0\.0\.0\.0|\[?::1?\]?:)/;

export interface EndpointWatchOptions {
  tunnel: Tunnel;
  /** `-listen`: the UDP address the tunnel is bound to. */
  listen: string;
  /** `-endpoint`: a fixed public endpoint, never replaced by what the beacon sees. */
  endpoint?: string;
  beacon?: string;
  /** Tells the registry (and the session's next registration) about a new endpoint. */
  register: (endpoint: string) => void;
  log: Logger;
}

/**
 * The UDP endpoint the registry holds for this node and what is known of the NAT in front of it:
 * found at start, followed when the beacon sees us somewhere new, shown by info.
 */
export class EndpointWatch {
  /** The endpoint the registry holds for us. */
  registered = '';
  private timer: NodeJS.Timeout | undefined;
  private natRunning = false;
  private stopped = false;

  constructor(private readonly o: EndpointWatchOptions) {}

  /** The endpoint other nodes should use: -endpoint, else what the beacon saw, else our socket. */
  async discover(): Promise<string> {
    this.registered = await this.find();
    return this.registered;
  }

  private async find(): Promise<string> {
    const { tunnel, listen } = this.o;
    if (this.o.endpoint) return this.o.endpoint;
    const listenHost = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    const observed = this.o.beacon ? await tunnel.discoverEndpoint(1000).catch(() => undefined) : undefined;
    if (observed && !UNROUTABLE_ENDPOINT.test(observed)) return observed;
    if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') {
      return listenHost.includes(':') ? `[${listenHost}]:${tunnel.localPort}` : `${listenHost}:${tunnel.localPort}`;
    }
    return `127.0.0.1:${tunnel.localPort}`;
  }

  /** Follows the endpoint the beacon sees and checks the NAT now and then. */
  start(): void {
    this.o.tunnel.on('observed-endpoint', (e: { endpoint: string }) => this.observed(e.endpoint));
    if (!this.o.beacon) return;
    this.checkNat();
    this.timer = setInterval(() => this.checkNat(), NAT_RECHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private observed(endpoint: string): void {
    if (this.stopped || this.o.endpoint || UNROUTABLE_ENDPOINT.test(endpoint) || endpoint === this.registered) return;
    // Our NAT gave us a new public endpoint (rebinding, a new address): tell the registry, so that
    // new peers find us, and look at the NAT again. Peers we talk to follow by themselves.
    const previous = this.registered;
    this.registered = endpoint;
    this.o.log.info({ previous, endpoint }, 'the beacon sees us at a new endpoint; registering it');
    this.o.register(endpoint);
    this.checkNat();
  }

  /** Finds our NAT's behaviour in the background (shown by info). */
  private checkNat(): void {
    if (this.natRunning || this.stopped) return;
    this.natRunning = true;
    this.o.tunnel
      .detectNat()
      .then(
        (nat) =>
          this.o.log.info(
            { nat: nat.type, mapping: nat.mapping, filtering: nat.filtering, endpoint: nat.publicEndpoint },
            'NAT behaviour',
          ),
        (err: unknown) => this.o.log.warn({ err: String(err) }, 'NAT detection failed'),
      )
      .finally(() => (this.natRunning = false));
  }

  /** `nat` of info: what is known of the NAT in front of us. */
  info(): JsonObject {
    const { tunnel } = this.o;
    const nat = tunnel.nat;
    return {
      type: nat?.type ?? 'unknown',
      mapping: nat?.mapping ?? 'unknown',
      filtering: nat?.filtering ?? 'unknown',
      public_endpoint: tunnel.observedEndpoint ?? nat?.publicEndpoint ?? '',
      registered_endpoint: this.registered,
      ...(nat ? { checked_secs_ago: Math.floor((Date.now() - nat.checkedAt) / 1000) } : {}),
    };
  }
}
