#!/usr/bin/env -S node --no-memory-reducer --initial-old-space-size=64
import { parseHostPort } from '../beacon/endpoint.js';
import { joinHostPort } from '../protocol/host-port.js';
import { startHealthServer, type HealthServer } from '../beacon/health.js';
import { BeaconServer } from '../beacon/server.js';
import { parseLogFormat, type FlagSpec } from '../config/go-flags.js';
import { PilotError } from '../errors.js';
import { createLogger } from '../log.js';
import { closeOnSignal, exitWithError, parseLogLevel, parseServerArgs, SERVER_FLAGS } from './server-cli.js';

const FLAGS = {
  addr: { kind: 'string', help: 'UDP listen address (default ":9001")' },
  'beacon-id': { kind: 'int', help: "this beacon's ID in gossip messages and at the registry (default 0)" },
  peers: { kind: 'string', help: 'comma-separated peer beacon addresses (host:port) to gossip with' },
  health: { kind: 'string', help: 'HTTP listen address for GET /healthz (off when empty)' },
  registry: {
    kind: 'string',
    help: "registry (host:port) whose public lookup verifies nodes' proofs of their ids; with -beacon-id also registered with every 30 s to learn peer beacons",
  },
  'require-proof': {
    kind: 'bool',
    help: 'relay and punch only for nodes that proved their id (pilot-ts daemons; needs -registry): refuses Go daemons',
  },
  'registry-fingerprint': {
    kind: 'string',
    help: 'the registry serves TLS: pin its certificate (hex SHA-256 of the DER, as it prints it)',
  },
  advertise: {
    kind: 'string',
    help: 'address (host:port) registered for other beacons to reach this one (default: the listen IP, or the local IP that routes to the registry)',
  },
  'nat-probe-addr': {
    kind: 'string',
    help: 'another IP address of this host: NAT probes are also answered from it, so daemons can tell full from restricted cone NATs (pilot-ts only)',
  },
  ...SERVER_FLAGS,
} as const satisfies FlagSpec;

async function main(argv: readonly string[]): Promise<void> {
  const flags = parseServerArgs('pilot-beacon', argv, FLAGS);
  if (flags === undefined) return;
  const { host, port } = parseHostPort(flags.addr || ':9001');
  const format = parseLogFormat(flags['log-format']);
  const log = createLogger({ name: 'beacon', level: parseLogLevel(flags['log-level']), format });
  const beaconId = flags['beacon-id'] ?? 0;
  const registry = flags.registry ?? '';
  const advertise = flags.advertise ?? '';
  const discover = registry !== '' && beaconId !== 0;
  if (registry !== '' && beaconId === 0) {
    process.stderr.write(
      'note: -registry verifies node proofs only: peer discovery needs a non-zero -beacon-id to register under\n',
    );
  }
  if (flags['require-proof'] === true && registry === '')
    throw new PilotError('invalid_argument', '-require-proof needs -registry (the node keys come from it)');
  if (advertise !== '' && !discover)
    process.stderr.write('warning: -advertise has no effect without -registry and a non-zero -beacon-id\n');
  const beacon = await BeaconServer.start({
    host,
    port,
    beaconId,
    peers: flags.peers?.split(',') ?? [],
    discovery: discover
      ? { registry, advertise: advertise || undefined, registryFingerprint: flags['registry-fingerprint'] || undefined }
      : undefined,
    ...(registry !== ''
      ? {
          registry: {
            address: registry,
            ...(flags['registry-fingerprint'] ? { fingerprint: flags['registry-fingerprint'] } : {}),
          },
        }
      : {}),
    requireProof: flags['require-proof'] === true,
    ...(flags['nat-probe-addr'] ? { natProbe: { otherAddress: flags['nat-probe-addr'] } } : {}),
    log,
  });
  let health: HealthServer | undefined;
  const healthAddr = flags.health ? parseHostPort(flags.health) : undefined;
  if (healthAddr) {
    try {
      health = await startHealthServer(healthAddr.host, healthAddr.port, () => beacon.listening);
    } catch (err) {
      await beacon.close();
      throw err;
    }
  }
  process.stdout.write(`beacon listening on ${joinHostPort(beacon.host, beacon.port)}\n`);
  if (health && healthAddr)
    process.stdout.write(`health listening on ${joinHostPort(healthAddr.host || '0.0.0.0', health.port)}\n`);
  closeOnSignal(async () => {
    await Promise.all([beacon.close(), health?.close()]);
  });
}

main(process.argv.slice(2)).catch(exitWithError);
