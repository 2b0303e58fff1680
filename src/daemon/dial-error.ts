import { type PilotError, remoteFailure } from '../errors.js';
import type { SocketAddr } from '../protocol/address.js';
import type { ResetCause } from '../transport/reset-cause.js';
import type { CloseReason } from '../transport/types.js';
import { closeError } from './local-conn.js';

/** Why a dial failed, with what the refusing node said when it is pilot-ts (a Go node says nothing). */
export function dialError(reason: CloseReason, cause: ResetCause | undefined, remote: SocketAddr): PilotError {
  if (reason !== 'refused') return closeError(reason);
  const where = `port ${remote.port} of node ${remote.addr.node}`;
  switch (cause) {
    case 'port_full':
      return remoteFailure(
        'unavailable',
        `connection refused: port full (${where} has no free connection slot)`,
        'the port is busy: try again later',
      );
    case 'table_full':
      return remoteFailure(
        'unavailable',
        `connection refused: connection table full (node ${remote.addr.node} has no free connection slot)`,
        'the node is busy: try again later',
      );
    case 'no_listener':
      return remoteFailure('refused', `connection refused: no listener on ${where}`);
    case 'untrusted':
      return remoteFailure(
        'untrusted',
        `connection refused: node ${remote.addr.node} does not trust this node`,
        `ask for trust with: pilotctl handshake ${remote.addr.node}`,
      );
    default:
      return closeError(reason);
  }
}
