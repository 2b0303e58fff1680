/**
 * A small internet on one machine, built with network namespaces: a public segment (198.18.0.0/24)
 * with the registry, the beacon and a public agent, and private segments (198.19.N.0/24) behind NAT
 * routers of four kinds. Only addresses of the benchmarking range 198.18.0.0/15 are used, only
 * inside namespaces created here; no namespace is connected to the host's, so nothing is routed
 * out. Everything is removed by `stop()`, on SIGINT/SIGTERM and at exit, and leftovers of a run
 * that died are removed by the next one (`removeLeftovers`).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type NatKind = 'public' | 'fullcone' | 'restricted' | 'portrestricted' | 'symmetric';

/** Every namespace of a lab is named `<PREFIX><pid>-<role>`. */
const PREFIX = 'pnl';
export const REGISTRY_IP = '198.18.0.10';
/** A second address of the beacon's host: NAT probes are also answered from it. */
export const BEACON_ALT_IP = '198.18.0.11';
export const REGISTRY_ADDR = `${REGISTRY_IP}:9000`;
export const BEACON_ADDR = `${REGISTRY_IP}:9001`;

export interface AgentSpec {
  /** Also the agent's hostname at the registry. */
  readonly name: string;
  readonly kind: NatKind;
}

export interface LabAgent extends AgentSpec {
  readonly ns: string;
  /** The router's namespace (undefined for the public agent). */
  readonly routerNs: string | undefined;
  readonly ip: string;
  /** The router's public address (the agent's own for the public agent); `renumber` changes it. */
  publicIp: string;
  readonly home: string;
  readonly socket: string;
  nodeId: number;
  proc: ChildProcess | undefined;
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[], input?: string, timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr: stderr || (err && code !== 0 && !stderr ? String(err.message) : stderr) });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

function listNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n !== '');
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills whatever runs in a namespace, then deletes it (its links and rules go with it). */
function deleteNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
      .split('\n')
      .filter((p) => p !== '');
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Removes the namespaces of labs whose process no longer runs (a crashed or killed run). */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(ns);
    if (!m || alive(Number(m[1]))) continue;
    deleteNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

/** Why the lab cannot run here, or undefined when it can. */
export async function labSkipReason(): Promise<string | undefined> {
  if (process.platform !== 'linux')
    return `NAT lab skipped: needs Linux network namespaces (platform ${process.platform})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return 'NAT lab skipped: needs root (ip netns, nft)';
  for (const tool of ['ip', 'nft', 'tc']) {
    const r = await run(tool, ['-V']);
    if (r.code !== 0 && !/version|utility|nftables/i.test(r.stdout + r.stderr))
      return `NAT lab skipped: "${tool}" is not installed`;
  }
  const probe = `${PREFIX}${process.pid}-probe`;
  const add = await run('ip', ['netns', 'add', probe]);
  if (add.code !== 0) return `NAT lab skipped: cannot create a network namespace (${add.stderr.trim()})`;
  const nft = await run('ip', ['netns', 'exec', probe, 'nft', 'add', 'table', 'ip', 'probe']);
  await run('ip', ['netns', 'del', probe]);
  if (nft.code !== 0) return `NAT lab skipped: nftables does not work in a namespace (${nft.stderr.trim()})`;
  return undefined;
}

/** nftables rules of a router: masquerade out of `wan`, and the filtering of each NAT kind. */
export function routerRules(kind: Exclude<NatKind, 'public'>, agentIp: string): string {
  const masquerade = kind === 'symmetric' ? 'masquerade random,fully-random' : 'masquerade';
  // Full cone: anything arriving for the router's address goes to the agent (endpoint-independent
  // filtering; masquerade keeps the agent's port). Restricted: only from addresses the agent sent to.
  const inbound =
    kind === 'fullcone'
      ? `iifname "wan" meta l4proto udp dnat to ${agentIp}`
      : kind === 'restricted'
        ? `iifname "wan" meta l4proto udp ip saddr @contacted dnat to ${agentIp}`
        : '';
  const remember = kind === 'restricted' ? 'update @contacted { ip daddr }' : '';
  return `
table ip lab {
  set contacted { type ipv4_addr; flags timeout; timeout 5m; }
  chain nat_pre {
    type nat hook prerouting priority dstnat; policy accept;
    ${inbound}
  }
  chain nat_post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ${masquerade}
  }
  chain filter_fwd {
    type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" ${remember} accept
    ct state established,related accept
    ct status dnat accept
  }
  chain filter_in {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
}
`;
}

export interface LabOptions {
  /** The project's dist/ (built executables). */
  readonly dist: string;
  readonly agents: readonly AgentSpec[];
  /** Extra flags for every daemon. */
  readonly daemonFlags?: readonly string[];
  /** Extra flags for pilot-rendezvous (registry and beacon). */
  readonly beaconFlags?: readonly string[];
}

let activeLabs = new Set<NatLab>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const cleanupAll = (): void => {
    for (const lab of activeLabs) lab.destroySync();
    activeLabs = new Set();
  };
  process.once('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

export class NatLab {
  readonly tag = `${PREFIX}${process.pid}-`;
  readonly agents = new Map<string, LabAgent>();
  readonly dir = mkdtempSync(join(tmpdir(), 'pilot-natlab-'));
  readonly #namespaces: string[] = [];
  readonly #procs = new Set<ChildProcess>();
  readonly #logs = new Map<string, string[]>();
  #routers = 0;
  #destroyed = false;

  private constructor(readonly opts: LabOptions) {}

  static async start(opts: LabOptions): Promise<NatLab> {
    removeLeftovers();
    installHandlers();
    const lab = new NatLab(opts);
    activeLabs.add(lab);
    try {
      await lab.#build();
      await lab.#startServers();
      await Promise.all([...lab.agents.values()].map((a) => lab.startAgent(a.name)));
    } catch (err) {
      await lab.stop();
      throw err;
    }
    return lab;
  }

  get rdvNs(): string {
    return `${this.tag}rdv`;
  }

  get inetNs(): string {
    return `${this.tag}inet`;
  }

  agent(name: string): LabAgent {
    const a = this.agents.get(name);
    if (!a) throw new Error(`no agent ${name}`);
    return a;
  }

  async #ns(name: string): Promise<string> {
    const ns = `${this.tag}${name}`;
    await must('ip', ['netns', 'add', ns]);
    this.#namespaces.push(ns);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A veth from `ns` (named `ifname`) to the public bridge. */
  async #toBridge(ns: string, ifname: string, ip: string): Promise<void> {
    const port = `p${this.#namespaces.length}`;
    await must('ip', ['link', 'add', ifname, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', this.inetNs]);
    await must('ip', ['-n', this.inetNs, 'link', 'set', port, 'master', 'br0', 'up']);
    await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', ifname]);
    await must('ip', ['-n', ns, 'link', 'set', ifname, 'up']);
  }

  async #build(): Promise<void> {
    const inet = await this.#ns('inet');
    await must('ip', ['-n', inet, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', inet, 'link', 'set', 'br0', 'up']);
    const rdv = await this.#ns('rdv');
    await this.#toBridge(rdv, 'eth0', REGISTRY_IP);
    await must('ip', ['-n', rdv, 'addr', 'add', `${BEACON_ALT_IP}/24`, 'dev', 'eth0']);
    let publicHosts = 0;
    for (const spec of this.opts.agents) {
      const home = mkdtempSync(join(this.dir, `${spec.name}-`));
      const socket = join(home, 'pilot.sock');
      if (spec.kind === 'public') {
        const ip = `198.18.0.${20 + publicHosts++}`;
        const ns = await this.#ns(`a-${spec.name}`);
        await this.#toBridge(ns, 'eth0', ip);
        this.agents.set(spec.name, {
          ...spec,
          ns,
          routerNs: undefined,
          ip,
          publicIp: ip,
          home,
          socket,
          nodeId: 0,
          proc: undefined,
        });
        continue;
      }
      const n = ++this.#routers;
      const wanIp = `198.18.0.${100 + n}`;
      const lanNet = `198.19.${n}`;
      const router = await this.#ns(`r-${spec.name}`);
      await this.#toBridge(router, 'wan', wanIp);
      const ns = await this.#ns(`a-${spec.name}`);
      await must('ip', ['link', 'add', 'lan', 'netns', router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await must('ip', ['-n', router, 'addr', 'add', `${lanNet}.1/24`, 'dev', 'lan']);
      await must('ip', ['-n', router, 'link', 'set', 'lan', 'up']);
      await must('ip', ['-n', ns, 'addr', 'add', `${lanNet}.2/24`, 'dev', 'eth0']);
      await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', `${lanNet}.1`]);
      await must('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      await must('ip', ['netns', 'exec', router, 'nft', '-f', '-'], routerRules(spec.kind, `${lanNet}.2`));
      this.agents.set(spec.name, {
        ...spec,
        ns,
        routerNs: router,
        ip: `${lanNet}.2`,
        publicIp: wanIp,
        home,
        socket,
        nodeId: 0,
        proc: undefined,
      });
    }
  }

  /** Spawns `node <dist/bin/...>` inside a namespace; resolves when `ready` appears on stdout. */
  spawnNode(
    ns: string,
    label: string,
    script: string,
    args: readonly string[],
    ready: RegExp,
    env: NodeJS.ProcessEnv = {},
  ): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(this.opts.dist, 'bin', script), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.#procs.add(child);
    const log: string[] = [];
    this.#logs.set(label, log);
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`${label} did not start in 20 s:\n${log.join('').slice(-3000)}`)),
        20_000,
      );
      const onData = (chunk: Buffer): void => {
        const text = chunk.toString('utf8');
        log.push(text);
        if (log.length > 400) log.splice(0, log.length - 400);
        out += text;
        if (ready.test(out)) {
          clearTimeout(timer);
          out = '';
          resolve(child);
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (c: Buffer) => {
        log.push(c.toString('utf8'));
        if (log.length > 400) log.splice(0, log.length - 400);
      });
      child.once('exit', (code, signal) => {
        this.#procs.delete(child);
        clearTimeout(timer);
        reject(new Error(`${label} exited (${code ?? signal}):\n${log.join('').slice(-3000)}`));
      });
    });
  }

  logOf(label: string): string {
    return (this.#logs.get(label) ?? []).join('');
  }

  async #startServers(): Promise<void> {
    // Registry and beacon in one process: the beacon knows who trusts whom, so it coordinates punches
    // between private nodes (a lone beacon only towards public ones).
    await this.spawnNode(
      this.rdvNs,
      'rendezvous',
      'pilot-rendezvous.js',
      [
        '-registry-addr',
        REGISTRY_ADDR,
        '-beacon-addr',
        BEACON_ADDR,
        '-nat-probe-addr',
        BEACON_ALT_IP,
        '-store',
        join(this.dir, 'registry.db'),
        '-log-level',
        'warn',
        ...(this.opts.beaconFlags ?? []),
      ],
      /beacon listening/,
    );
  }

  async startAgent(name: string): Promise<void> {
    const a = this.agent(name);
    const args = [
      '-registry',
      REGISTRY_ADDR,
      '-beacon',
      BEACON_ADDR,
      '-listen',
      '0.0.0.0:0',
      '-socket',
      a.socket,
      '-identity',
      join(a.home, 'identity.key'),
      '-home',
      a.home,
      '-hostname',
      a.name,
      '-log-level',
      'info',
      ...(this.opts.daemonFlags ?? []),
    ];
    const proc = await this.spawnNode(a.ns, a.name, 'pilot-daemon.js', args, /daemon ready .* node (\d+)/, {
      PILOT_HOME: a.home,
    });
    const m = /daemon ready .* node (\d+)/.exec(this.logOf(a.name));
    a.nodeId = Number(m?.[1] ?? 0);
    a.proc = proc;
  }

  async stopAgent(name: string): Promise<void> {
    const a = this.agent(name);
    const proc = a.proc;
    a.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve();
      }, 5000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  }

  /** Runs a command inside a namespace. */
  exec(ns: string, cmd: string, args: readonly string[], input?: string, timeoutMs = 120_000): Promise<CommandResult> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], input, timeoutMs);
  }

  /** `pilotctl --json …` run inside the agent's namespace against its daemon; the `data` object. */
  async ctl(
    name: string,
    args: readonly string[],
    input?: string,
    timeoutMs = 120_000,
  ): Promise<Record<string, unknown>> {
    const r = await this.ctlRaw(name, ['--json', ...args], input, timeoutMs);
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    } catch {
      throw new Error(`pilotctl ${args.join(' ')} at ${name}: no JSON (${r.code}): ${r.stdout}${r.stderr}`);
    }
    const env = parsed as { status?: string; data?: unknown; message?: string };
    if (env.status !== 'ok') throw new Error(`pilotctl ${args.join(' ')} at ${name}: ${env.message ?? r.stdout}`);
    return (env.data ?? {}) as Record<string, unknown>;
  }

  ctlRaw(name: string, args: readonly string[], input?: string, timeoutMs = 120_000): Promise<CommandResult> {
    const a = this.agent(name);
    return this.exec(
      a.ns,
      'env',
      [
        `PILOT_SOCKET=${a.socket}`,
        `PILOT_HOME=${a.home}`,
        process.execPath,
        join(this.opts.dist, 'bin', 'pilotctl.js'),
        ...args,
      ],
      input,
      timeoutMs,
    );
  }

  /** Runs an nft command on an agent's router. */
  async nft(name: string, args: readonly string[]): Promise<void> {
    const router = this.agent(name).routerNs;
    if (!router) throw new Error(`${name} has no router`);
    await must('ip', ['netns', 'exec', router, 'nft', ...args]);
  }

  /**
   * Gives an agent's router a new public address, as an ISP renumbering a line: the old address
   * goes (the kernel drops the NAT mappings made with it, and anything still sent to it is dropped),
   * the new one is masqueraded from then on, and whatever conntrack still holds is flushed (with
   * the conntrack tool where installed), so every flow gets a new mapping.
   */
  async renumber(name: string, newIp: string): Promise<void> {
    const a = this.agent(name);
    const router = a.routerNs;
    if (!router) throw new Error(`${name} has no router`);
    if (!/^198\.1[89]\./.test(newIp)) throw new Error(`${newIp} is outside 198.18.0.0/15`);
    // Neighbours still hold the old address's MAC for a while: what they send there is dropped.
    const gone = `table ip lab {\n chain gone {\n  type filter hook prerouting priority -300; policy accept;\n  iifname "wan" ip daddr ${a.publicIp} drop\n }\n}\n`;
    await must('ip', ['netns', 'exec', router, 'nft', '-f', '-'], gone);
    await must('ip', ['-n', router, 'addr', 'flush', 'dev', 'wan']);
    await must('ip', ['-n', router, 'addr', 'add', `${newIp}/24`, 'dev', 'wan']);
    await run('ip', ['netns', 'exec', router, 'conntrack', '-F']);
    a.publicIp = newIp;
  }

  /**
   * Delay and loss on the public side of every router (so twice the delay between two NATed agents):
   * with `tc netem` where the kernel has it; otherwise loss only, by an nftables rule on each router
   * (`delayed` is then false). `undefined` removes both.
   */
  async impair(spec: { delayMs: number; lossPct: number } | undefined): Promise<{ delayed: boolean }> {
    let delayed = spec !== undefined;
    for (const a of this.agents.values()) {
      if (!a.routerNs) continue;
      await run('ip', ['netns', 'exec', a.routerNs, 'tc', 'qdisc', 'del', 'dev', 'wan', 'root']);
      await run('ip', ['netns', 'exec', a.routerNs, 'nft', 'delete', 'chain', 'ip', 'lab', 'impair']);
      if (!spec) continue;
      const netem = await run('ip', [
        'netns',
        'exec',
        a.routerNs,
        'tc',
        'qdisc',
        'add',
        'dev',
        'wan',
        'root',
        'netem',
        'delay',
        `${spec.delayMs}ms`,
        'loss',
        `${spec.lossPct}%`,
      ]);
      if (netem.code === 0) continue;
      delayed = false;
      // Both directions of the router's forwarding, before the NAT and filter rules decide.
      const rules = `table ip lab {\n chain impair {\n  type filter hook forward priority -10; policy accept;\n  numgen random mod 1000 < ${Math.round(spec.lossPct * 10)} drop\n }\n}\n`;
      await must('ip', ['netns', 'exec', a.routerNs, 'nft', '-f', '-'], rules);
    }
    return { delayed };
  }

  /** Synchronous teardown for exit and signal handlers. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const p of this.#procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    for (const ns of [...this.#namespaces].reverse()) deleteNamespace(ns);
    rmSync(this.dir, { recursive: true, force: true });
    activeLabs.delete(this);
  }

  async stop(): Promise<void> {
    if (this.#destroyed) return;
    await Promise.all([...this.agents.keys()].map((n) => this.stopAgent(n).catch(() => undefined)));
    for (const p of this.#procs) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    this.destroySync();
  }
}
