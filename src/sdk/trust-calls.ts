import type { IpcHandshakeOp } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import {
  parseOutgoing,
  parsePending,
  parseTrusted,
  type OutgoingEntry,
  type PendingEntry,
  type TrustedEntry,
} from './info.js';
import { checkU32 } from './validate.js';

/** Carries one trust operation (a daemon's IPC Handshake command, or the embedded node's own). */
export type TrustOp = (op: IpcHandshakeOp, context: string) => Promise<JsonObject>;

/**
 * The trust calls of a node handle: each checks its arguments (a bad one rejects, as every call of
 * the API does), builds its operation and reads the reply.
 */
export class TrustCalls {
  constructor(private readonly op: TrustOp) {}

  async handshake(nodeId: number, justification = ''): Promise<JsonObject> {
    return this.op(
      { sub: 'Request', nodeId: checkU32(nodeId, 'node id'), justification },
      `handshake with node ${nodeId}`,
    );
  }

  async approve(nodeId: number): Promise<JsonObject> {
    return this.op({ sub: 'Approve', nodeId: checkU32(nodeId, 'node id') }, `approve node ${nodeId}`);
  }

  async reject(nodeId: number, reason = ''): Promise<JsonObject> {
    return this.op({ sub: 'Reject', nodeId: checkU32(nodeId, 'node id'), reason }, `reject node ${nodeId}`);
  }

  async untrust(nodeId: number): Promise<JsonObject> {
    return this.op({ sub: 'Revoke', nodeId: checkU32(nodeId, 'node id') }, `untrust node ${nodeId}`);
  }

  async pending(): Promise<PendingEntry[]> {
    return parsePending(await this.op({ sub: 'Pending' }, 'pending'));
  }

  async trusted(): Promise<TrustedEntry[]> {
    return parseTrusted(await this.op({ sub: 'Trusted' }, 'trusted'));
  }

  async outgoing(): Promise<OutgoingEntry[]> {
    return parseOutgoing(await this.op({ sub: 'Outgoing' }, 'outgoing'));
  }
}
