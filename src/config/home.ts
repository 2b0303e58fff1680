import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Locations under the pilot home directory (`$PILOT_HOME`, else `$HOME/.pilot`), as PROTOCOL.md
 * §10.1 lays them out. Every module that owns one of these files takes its path from here.
 */
export interface PilotPaths {
  readonly home: string;
  readonly config: string;
  readonly identity: string;
  readonly trust: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly inbox: string;
  readonly received: string;
  readonly outbox: string;
  readonly tasks: string;
  readonly registryStore: string;
  readonly rendezvousPidFile: string;
  readonly rendezvousLogFile: string;
}

export function pilotHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PILOT_HOME) return env.PILOT_HOME;
  return join(env.HOME ?? homedir(), '.pilot');
}

export function pilotPaths(home: string = pilotHome()): PilotPaths {
  return {
    home,
    config: join(home, 'config.json'),
    identity: join(home, 'identity.key'),
    trust: join(home, 'trust.json'),
    pidFile: join(home, 'pilot.pid'),
    logFile: join(home, 'pilot.log'),
    inbox: join(home, 'inbox'),
    received: join(home, 'received'),
    outbox: join(home, 'outbox'),
    tasks: join(home, 'tasks'),
    registryStore: join(home, 'registry.db'),
    rendezvousPidFile: join(home, 'rendezvous.pid'),
    rendezvousLogFile: join(home, 'rendezvous.log'),
  };
}

/** Defaults of this implementation: a local rendezvous instead of the reference's public one. */
export const DEFAULT_REGISTRY = '127.0.0.1:9000';
export const DEFAULT_BEACON = '127.0.0.1:9001';
export const DEFAULT_SOCKET = '/tmp/pilot.sock';
