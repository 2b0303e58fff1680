import type { JsonObject } from '../../protocol/json.js';
import { maxPositionals } from '../args.js';
import type { CommandSpec } from '../command.js';
import { packageVersion } from '../../version.js';

export const ERROR_CODES: Readonly<Record<string, string>> = {
  invalid_argument: 'An argument or flag is missing or malformed; the message names it.',
  not_running: 'No daemon answers on the socket; start one with "pilotctl daemon start".',
  already_exists: 'The daemon (or another instance) is already running.',
  connection_failed: 'A stream or request could not reach the peer, the daemon or the registry.',
  not_found: 'The hostname, node or item does not exist or is not visible to this node.',
  timeout: 'The operation did not finish within its --timeout.',
  unavailable: 'The feature is not available in this release.',
  untrusted: 'The peer has not approved a trust handshake with this node.',
  refused:
    'The peer or registry refused the request (a task below the polo gate, a task in the wrong state, …); the hint says why.',
  too_large: 'A file or message is larger than the protocol carries.',
  interrupted: 'Ctrl-C (SIGINT) stopped the command; exit status 130.',
  internal: 'An unexpected failure; the message has the details.',
};

export const EXIT_CODES: Readonly<Record<string, string>> = {
  '0': 'success',
  '1': 'failure (the error envelope says which)',
  '2': 'usage error: unknown command or flag, missing or malformed argument (code invalid_argument), with or without --json',
  '130':
    'interrupted by Ctrl-C; measuring commands (ping, bench, listen, subscribe, recv) first print what they measured, with "interrupted": true',
};

export const versionCommand: CommandSpec = {
  name: 'version',
  args: [],
  description: 'Prints the pilotctl version (also: pilotctl --version).',
  returns: '{node, version}',
  flags: {},
  async run(_ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const version = packageVersion();
    return {
      data: { node: process.version, version },
      text: `pilotctl ${version} (pilot-ts, node ${process.version})`,
    };
  },
};

export const ENVIRONMENT: Readonly<Record<string, string>> = {
  PILOT_HOME: 'Directory holding config.json, identity.key, pid and log files (default ~/.pilot).',
  PILOT_SOCKET: 'IPC socket of the daemon to talk to; beats config.json (default /tmp/pilot.sock).',
  PILOT_REGISTRY:
    'Registry host:port used by "lookup" and by "daemon start" when neither a flag nor config.json sets one.',
  PILOT_REGISTRY_FINGERPRINT:
    'SHA-256 (hex) of the registry TLS certificate, used when neither a flag nor config.json (registry_fingerprint) sets one; when set, "lookup" and the daemon reach the registry over TLS and accept only that certificate.',
  PILOT_BEACON: 'Beacon host:port used by "daemon start" when neither a flag nor config.json sets one.',
};

/** `pilotctl context`: a machine-readable description of the CLI, for agents that drive it. */
export function contextCommand(catalog: () => readonly CommandSpec[]): CommandSpec {
  return {
    name: 'context',
    args: [],
    description:
      'Describes every command, its arguments and its JSON result, the environment variables and the error codes.',
    returns: '{commands, config_file, environment, error_codes, exit_codes, global_flags, version}',
    flags: {},
    async run(ctx, args, usage) {
      maxPositionals(args, 0, usage);
      const commands: JsonObject = {};
      for (const spec of catalog()) {
        commands[spec.name] = { args: [...spec.args], description: spec.description, returns: spec.returns };
      }
      const data: JsonObject = {
        commands,
        config_file: ctx.paths.config,
        environment: { ...ENVIRONMENT },
        error_codes: { ...ERROR_CODES },
        exit_codes: { ...EXIT_CODES },
        global_flags: {
          '--json':
            'Print {"data":…,"status":"ok"} on stdout, or {"code","message","hint","status":"error"} on stderr on failure.',
        },
        version: packageVersion(),
      };
      return { data };
    },
  };
}
