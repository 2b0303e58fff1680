/**
 * A throw-away PostgreSQL server for tests and benchmarks: initdb in a temp directory, postgres on
 * a free loopback port, databases created on demand, everything removed on stop. Uses the server
 * binaries of Debian's `postgresql` package (or `initdb` on PATH). PostgreSQL refuses to run as
 * root, so as root the server runs as the `postgres` user (or `nobody`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgServer {
  readonly port: number;
  /** The postmaster's process id (its backends are its children). */
  readonly pid: number;
  /** A new, empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  try {
    const initdb = execFileSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).trim();
    return initdb === '' ? undefined : join(initdb, '..');
  } catch {
    return undefined;
  }
}

/** Why a server cannot be started here, or undefined when it can be tried. */
export function postgresUnavailable(): string | undefined {
  return binDir() === undefined
    ? "PostgreSQL server binaries (initdb) not found; install Debian's postgresql"
    : undefined;
}

function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
      return { uid, gid };
    } catch {
      // next candidate
    }
  }
  throw new Error('running as root and neither a postgres nor a nobody user exists to run PostgreSQL');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...user,
      env: { ...process.env, LC_ALL: 'C' },
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`))));
  });
}

export interface PgServerOptions {
  /** fsync on commit, as a production server (default off: tests need no durability across power loss). */
  readonly durable?: boolean;
  /** Load pg_stat_statements (benchmarks count statements per request with it). */
  readonly statementStats?: boolean;
}

export async function startPostgres(opts: PgServerOptions = {}): Promise<PgServer> {
  const bin = binDir();
  if (bin === undefined) throw new Error(postgresUnavailable());
  const user = runAs();
  const dir = await mkdtemp(join(tmpdir(), 'pilot-pg-'));
  const data = join(dir, 'data');
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  let child: ChildProcess | undefined;
  try {
    await run(join(bin, 'initdb'), ['-D', data, '-U', 'pilot', '-A', 'trust', '-E', 'UTF8', '--no-sync'], user);
    const port = await freePort();
    const settings = [
      ['listen_addresses', '127.0.0.1'],
      ['unix_socket_directories', dir],
      ['max_connections', '200'],
      ['fsync', opts.durable === true ? 'on' : 'off'],
      ['synchronous_commit', opts.durable === true ? 'on' : 'off'],
      ['full_page_writes', opts.durable === true ? 'on' : 'off'],
      ...(opts.statementStats === true ? [['shared_preload_libraries', 'pg_stat_statements']] : []),
    ].flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const log: string[] = [];
    child = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), ...settings], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...user,
    });
    child.stderr?.on('data', (d: Buffer) => {
      log.push(d.toString());
      if (log.length > 50) log.shift();
    });
    const admin = `postgres://pilot@127.0.0.1:${port}/postgres`;
    await waitReady(admin, child, log);
    let counter = 0;
    const server = child;
    return {
      port,
      pid: server.pid ?? 0,
      async createDatabase(name = `t${process.pid}_${++counter}_${Date.now() % 100000}`) {
        const client = new pg.Client({ connectionString: admin });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE ${name}`);
        } finally {
          await client.end();
        }
        return `postgres://pilot@127.0.0.1:${port}/${name}`;
      },
      async stop() {
        if (server.exitCode === null && server.signalCode === null) {
          const exited = new Promise((r) => server.once('exit', r));
          server.kill('SIGINT');
          await exited;
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function waitReady(url: string, child: ChildProcess, log: string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited (${child.exitCode}): ${log.join('').trim()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`postgres not ready after 30 s: ${String(err)}; ${log.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
