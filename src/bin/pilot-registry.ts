#!/usr/bin/env -S node --no-memory-reducer --initial-old-space-size=64
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pilotPaths } from '../config/home.js';
import { parseLogFormat, type FlagSpec } from '../config/go-flags.js';
import { PilotError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { joinHostPort, splitHostPort } from '../protocol/host-port.js';
import { parseDashboardAddress, startDashboard, type Dashboard } from '../registry/dashboard.js';
import { importJsonStore } from '../registry/import-json.js';
import { checkReplicationOptions } from '../registry/replication.js';
import { RegistryServer } from '../registry/server.js';
import { isStoreUrl, openStore } from '../registry/open-store.js';
import type { RegistryStore } from '../registry/store.js';
import { loadRegistryTls, registryTlsFromFlags } from '../registry/tls.js';
import { taskClock } from '../config/test-clock.js';
import { closeOnSignal, exitWithError, parseLogLevel, parseServerArgs, SERVER_FLAGS } from './server-cli.js';

const FLAGS = {
  addr: { kind: 'string', help: 'listen address host:port (default ":9000", all interfaces)' },
  store: {
    kind: 'string',
    help: 'SQLite store file (default $PILOT_HOME/registry.db), or postgres://user@host:port/db shared by several registry processes',
  },
  'admin-token': { kind: 'string', help: 'token that allows update_polo_score / set_polo_score (off when empty)' },
  'require-replay-proof': {
    kind: 'bool',
    help: 'accept only replay-proof signed requests (pilot-ts daemons); refuse the static signatures and unsigned registrations of Go daemons',
  },
  http: { kind: 'string', help: 'dashboard HTTP listen address host:port, e.g. 127.0.0.1:8080 (off when empty)' },
  tls: {
    kind: 'bool',
    help: 'serve TLS; without -tls-cert/-tls-key a self-signed certificate is generated once and kept next to the store',
  },
  'tls-cert': { kind: 'string', help: 'TLS certificate PEM file (with -tls and -tls-key)' },
  'tls-key': { kind: 'string', help: 'TLS private key PEM file (with -tls and -tls-cert)' },
  'replication-token': {
    kind: 'string',
    help: 'serve subscribe_replication to standbys with this token; with -standby, the token sent to the primary',
  },
  standby: { kind: 'string', help: 'run as a read-only standby of the primary registry at host:port' },
  'standby-fingerprint': {
    kind: 'string',
    help: 'the primary serves TLS: pin its certificate (hex SHA-256 of the DER, as it prints it)',
  },
  'import-json': {
    kind: 'string',
    help: 'import a Go registry store file (JSON) into the empty SQLite store, then run',
  },
  beacon: {
    kind: 'string',
    help: 'beacon address, as the reference takes it (accepted; the registry protocol does not use it)',
  },
  ...SERVER_FLAGS,
} as const satisfies FlagSpec;

/** Opens the store and fills it from a Go registry's JSON file (all or nothing). */
async function importedStore(storePath: string, file: string, log: Logger): Promise<RegistryStore> {
  const store = await openStore(storePath, log);
  try {
    log.info({ file, ...(await importJsonStore(store, file)) }, 'JSON store imported');
    return store;
  } catch (err) {
    await store.close();
    throw err;
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const flags = parseServerArgs('pilot-registry', argv, FLAGS);
  if (flags === undefined) return;
  const level = parseLogLevel(flags['log-level']);
  const addr = flags.addr ?? ':9000';
  const listen = splitHostPort(addr);
  if (listen === undefined) throw new Error(`invalid -addr "${addr}": expected host:port`);
  const httpAddr = flags.http ? parseDashboardAddress(flags.http) : undefined;
  const tlsSource = registryTlsFromFlags(flags);

  const storePath = flags.store ?? pilotPaths().registryStore;
  if (storePath !== ':memory:' && !isStoreUrl(storePath))
    mkdirSync(dirname(storePath), { recursive: true, mode: 0o700 });

  const format = parseLogFormat(flags['log-format']);
  const log = createLogger({ level, name: 'registry', format });
  const tls =
    tlsSource === undefined ? undefined : await loadRegistryTls(tlsSource, { storePath, listenHost: listen.host });
  if (tls !== undefined)
    log.info(
      { origin: tls.origin, cert: tls.certPath, not_after: tls.notAfter.toISOString() },
      'registry TLS certificate',
    );
  const replication = {
    token: flags['replication-token'],
    standbyOf: flags.standby,
    primaryFingerprint: flags['standby-fingerprint'],
  };
  checkReplicationOptions(replication);
  const importPath = flags['import-json'];
  if (importPath !== undefined && flags.standby !== undefined) {
    throw new PilotError(
      'invalid_argument',
      '-import-json and -standby exclude each other',
      'a standby takes its state from the primary',
    );
  }
  const store = importPath === undefined ? undefined : await importedStore(storePath, importPath, log);
  const server = await RegistryServer.start({
    host: listen.host,
    port: listen.port,
    storePath,
    store,
    log,
    adminToken: flags['admin-token'],
    requireSignedBody: flags['require-replay-proof'] === true,
    taskClock: taskClock(Date.now),
    ...(tls !== undefined ? { tls } : {}),
    replication,
  });
  const shownHost = listen.host === '' ? '0.0.0.0' : listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  process.stdout.write(`registry listening on ${shownHost}:${server.port}\n`);
  if (server.tlsFingerprint !== undefined) process.stdout.write(`registry TLS fingerprint ${server.tlsFingerprint}\n`);
  let dashboard: Dashboard | undefined;
  if (httpAddr) {
    try {
      dashboard = await startDashboard({ ...httpAddr, source: server, log: log.child({ component: 'dashboard' }) });
    } catch (err) {
      await server.close();
      throw err;
    }
    process.stdout.write(`dashboard listening on http://${joinHostPort(httpAddr.host || '0.0.0.0', dashboard.port)}\n`);
  }

  closeOnSignal(async () => {
    log.info('shutting down');
    await Promise.all([dashboard?.close(), server.close()]);
  });
}

main(process.argv.slice(2)).catch(exitWithError);
