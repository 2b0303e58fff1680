#!/usr/bin/env node
import { closeOnSignal, exitWithError, parseLogLevel, wantsHelp } from '../beacon/bin-support.js';
import { formatHostPort, parseHostPort } from '../beacon/endpoint.js';
import { startHealthServer, type HealthServer } from '../beacon/health.js';
import { BeaconServer } from '../beacon/server.js';
import { flagUsage, parseGoFlags, type FlagSpec } from '../config/go-flags.js';
import { PilotError } from '../errors.js';
import { createLogger } from '../log.js';

const FLAGS = {
  addr: { kind: 'string', help: 'UDP listen address (default ":9001")' },
  'beacon-id': { kind: 'int', help: 'this beacon\'s ID in gossip messages (default 0)' },
  peers: { kind: 'string', help: 'comma-separated peer beacon addresses (host:port) to gossip with' },
  health: { kind: 'string', help: 'HTTP listen address for GET /healthz (off when empty)' },
  registry: { kind: 'string', help: 'registry address for beacon peer discovery (accepted; peers come from -peers)' },
  'log-level': { kind: 'string', help: 'trace, debug, info, warn, error, silent (default "info")' },
  help: { kind: 'bool', help: 'show this help' },
} as const satisfies FlagSpec;

async function main(argv: readonly string[]): Promise<void> {
  const { flags, positionals } = parseGoFlags(argv, FLAGS);
  if (flags.help || wantsHelp(argv)) {
    process.stdout.write(`${flagUsage('pilot-beacon', FLAGS)}\n`);
    return;
  }
  if (positionals.length > 0) throw new PilotError('invalid_argument', `unexpected argument: ${positionals[0]}`);
  const { host, port } = parseHostPort(flags.addr || ':9001');
  const log = createLogger({ name: 'beacon', level: parseLogLevel(flags['log-level']) });
  const beacon = await BeaconServer.start({
    host,
    port,
    beaconId: flags['beacon-id'],
    peers: flags.peers?.split(',') ?? [],
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
  process.stdout.write(`beacon listening on ${formatHostPort(beacon.host, beacon.port)}\n`);
  if (health && healthAddr) process.stdout.write(`health listening on ${formatHostPort(healthAddr.host || '0.0.0.0', health.port)}\n`);
  closeOnSignal(async () => {
    await Promise.all([beacon.close(), health?.close()]);
  });
}

main(process.argv.slice(2)).catch(exitWithError);
