#!/usr/bin/env -S node --no-memory-reducer --initial-old-space-size=64
import { parseHostPort } from '../beacon/endpoint.js';
import { joinHostPort } from '../protocol/host-port.js';
import { startRendezvous } from '../beacon/rendezvous.js';
import { parseLogFormat, type FlagSpec } from '../config/go-flags.js';
import { pilotPaths } from '../config/home.js';
import { createLogger } from '../log.js';
import { closeOnSignal, exitWithError, parseLogLevel, parseServerArgs, SERVER_FLAGS } from './server-cli.js';
import { parseDashboardAddress } from '../registry/dashboard.js';
import { registryTlsFromFlags } from '../registry/tls.js';

const FLAGS = {
  'registry-addr': { kind: 'string', help: 'registry TCP listen address (default ":9000")' },
  'beacon-addr': { kind: 'string', help: 'beacon UDP listen address (default ":9001")' },
  'nat-probe-addr': {
    kind: 'string',
    help: 'another IP address of this host: the beacon also answers NAT probes from it, so daemons can tell full from restricted cone NATs (pilot-ts only)',
  },
  store: {
    kind: 'string',
    help: 'registry store file (default $PILOT_HOME/registry.db), or postgres://user@host:port/db shared by several registry processes',
  },
  'admin-token': { kind: 'string', help: 'token required for registry admin operations' },
  'require-replay-proof': {
    kind: 'bool',
    help: 'pilot-ts daemons only: the registry refuses static signatures and unsigned registrations, the beacon relays and punches only for nodes that proved their id',
  },
  http: { kind: 'string', help: 'dashboard HTTP listen address host:port, e.g. 127.0.0.1:8080 (off when empty)' },
  tls: {
    kind: 'bool',
    help: 'serve the registry over TLS; without -tls-cert/-tls-key a self-signed certificate is generated once and kept next to the store',
  },
  'tls-cert': { kind: 'string', help: 'registry TLS certificate PEM file (with -tls and -tls-key)' },
  'tls-key': { kind: 'string', help: 'registry TLS private key PEM file (with -tls and -tls-cert)' },
  standby: { kind: 'string', help: 'run the registry as a read-only standby of the primary at host:port' },
  'standby-fingerprint': {
    kind: 'string',
    help: 'the primary serves TLS: pin its certificate (hex SHA-256 of the DER, as it prints it)',
  },
  'replication-token': {
    kind: 'string',
    help: 'serve registry replication to standbys with this token; with -standby, the token sent to the primary',
  },
  ...SERVER_FLAGS,
} as const satisfies FlagSpec;

async function main(argv: readonly string[]): Promise<void> {
  const flags = parseServerArgs('pilot-rendezvous', argv, FLAGS);
  if (flags === undefined) return;
  const registryAddr = parseHostPort(flags['registry-addr'] || ':9000');
  const beaconAddr = parseHostPort(flags['beacon-addr'] || ':9001');
  const httpAddr = flags.http ? parseDashboardAddress(flags.http) : undefined;
  const tls = registryTlsFromFlags(flags);
  const format = parseLogFormat(flags['log-format']);
  const log = createLogger({ name: 'rendezvous', level: parseLogLevel(flags['log-level']), format });
  const rdv = await startRendezvous({
    registryHost: registryAddr.host || undefined,
    registryPort: registryAddr.port,
    beaconHost: beaconAddr.host || undefined,
    beaconPort: beaconAddr.port,
    storePath: flags.store || pilotPaths().registryStore,
    adminToken: flags['admin-token'] || undefined,
    requireSignedBody: flags['require-replay-proof'] === true,
    requireBeaconProof: flags['require-replay-proof'] === true,
    ...(flags['nat-probe-addr'] ? { beaconNatProbe: { otherAddress: flags['nat-probe-addr'] } } : {}),
    ...(tls !== undefined ? { tls } : {}),
    log,
    dashboard: httpAddr,
    replication: {
      token: flags['replication-token'],
      standbyOf: flags.standby,
      primaryFingerprint: flags['standby-fingerprint'],
    },
  });
  process.stdout.write(`registry listening on ${joinHostPort(registryAddr.host || '0.0.0.0', rdv.registryPort)}\n`);
  if (rdv.registry.tlsFingerprint !== undefined)
    process.stdout.write(`registry TLS fingerprint ${rdv.registry.tlsFingerprint}\n`);
  process.stdout.write(`beacon listening on ${joinHostPort(rdv.beacon.host, rdv.beaconPort)}\n`);
  if (httpAddr && rdv.dashboard)
    process.stdout.write(
      `dashboard listening on http://${joinHostPort(httpAddr.host || '0.0.0.0', rdv.dashboard.port)}\n`,
    );
  closeOnSignal(() => rdv.close());
}

main(process.argv.slice(2)).catch(exitWithError);
