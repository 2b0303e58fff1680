import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isJsonObject, type JsonObject } from '../../src/protocol/json.js';
import type { Driver } from '../../src/sdk/driver.js';
import { IpcClient } from '../../src/sdk/ipc-client.js';
import { binCommand, type DaemonHandle } from './cluster.js';
import { until } from '../wait.js';

/** a asks, b approves; returns once both sides trust each other. */
export async function makeTrust(da: Driver, db: Driver, a: DaemonHandle, b: DaemonHandle): Promise<void> {
  await da.handshake(b.nodeId, 'e2e test');
  await until('pending request at b', async () =>
    (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
  );
  await db.approve(a.nodeId);
  await until('a trusts b', async () => ((await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined));
}

/** `services.eventstream` of the daemon's raw Info reply (the SDK's typed info() keeps only §8.4 fields). */
export async function brokerStats(socket: string): Promise<JsonObject> {
  const client = await IpcClient.connect(socket, {
    onPush: () => undefined,
    onUnsolicitedError: () => undefined,
    onClose: () => undefined,
  });
  try {
    const info = await client.request({ cmd: 'Info' }, 'InfoOK', (m) => ('json' in m ? m.json : {}));
    const services = info.services;
    const es = isJsonObject(services) ? services.eventstream : undefined;
    if (!isJsonObject(es)) throw new Error('no eventstream stats in info');
    return es;
  } finally {
    await client.close();
  }
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from start to each stdout line. */
  lineTimes: number[];
}

export function pilotctl(socket: string, home: string, args: string[], timeoutMs = 30_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [...binCommand('pilotctl'), ...args], {
      env: { ...process.env, PILOT_SOCKET: socket, PILOT_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const lineTimes: number[] = [];
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      for (let i = 0; i < c.toString().split('\n').length - 1; i++) lineTimes.push(Date.now() - started);
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pilotctl ${args.join(' ')} did not finish; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, lineTimes });
    });
  });
}

export interface Hooks {
  readonly url: string;
  readonly events: { event: string; data?: JsonObject }[];
  close(): Promise<void>;
}

export async function webhookSink(): Promise<Hooks> {
  const events: { event: string; data?: JsonObject }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      events.push(JSON.parse(body) as { event: string; data?: JsonObject });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/hook`, events, close: () => new Promise((r) => server.close(() => r())) };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
