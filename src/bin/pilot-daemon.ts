#!/usr/bin/env -S node --no-memory-reducer --initial-old-space-size=64
import { flagUsage } from '../config/go-flags.js';
import { DAEMON_FLAGS, parseDaemonArgs } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import { toPilotError } from '../errors.js';
import { createLogger } from '../log.js';
import { versionLine } from '../version.js';

async function main(): Promise<number> {
  let config: ReturnType<typeof parseDaemonArgs>;
  try {
    config = parseDaemonArgs(process.argv.slice(2));
  } catch (err) {
    const e = toPilotError(err);
    process.stderr.write(`pilot-daemon: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}\n`);
    return 2;
  }
  if (config === 'version') {
    process.stdout.write(`${versionLine('pilot-daemon')}\n`);
    return 0;
  }
  if (config === 'help') {
    process.stderr.write(`${flagUsage('pilot-daemon', DAEMON_FLAGS)}\n`);
    return 0;
  }
  const log = createLogger({ level: config.logLevel, name: 'daemon', format: config.logFormat });
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (err) {
    const e = toPilotError(err);
    log.error({ err: e.message, code: e.code }, 'daemon failed to start');
    process.stderr.write(`pilot-daemon: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ''}\n`);
    return 1;
  }
  process.stdout.write(`daemon ready ${daemon.address} node ${daemon.nodeId} socket ${daemon.socketPath}\n`);
  log.info({ address: daemon.address, node: daemon.nodeId, socket: daemon.socketPath }, 'daemon ready');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('shutting down');
  await daemon.stop();
  return 0;
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`pilot-daemon: unexpected error: ${err.stack ?? err.message}\n`);
});

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pilot-daemon: ${String(err)}\n`);
    process.exit(1);
  },
);
