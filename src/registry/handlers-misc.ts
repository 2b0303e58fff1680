import { timingSafeEqual } from 'node:crypto';
import type { JsonObject } from '../protocol/json.js';
import { nodeAddress, registeredNode, type Handler, type RegistryState, type RequestInfo } from './context.js';
import { intField, strField, u32Field } from './fields.js';
import { RequestError } from './request-error.js';

/** Beacon entries live this long after their last `beacon_register` (as the reference). */
export const BEACON_TTL_MS = 60_000;

const scoreReply = (type: string, id: number, score: number): JsonObject => ({
  type,
  node_id: id,
  address: nodeAddress(id),
  polo_score: score,
});

export const handleGetPoloScore: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  return scoreReply('get_polo_score_ok', id, (await registeredNode(state, id)).poloScore);
};

/** The reference lets anyone set any score (§14 #1); here only a holder of the admin token may. */
function requireAdmin(state: RegistryState, req: RequestInfo): void {
  const given = Buffer.from(strField(req.msg, 'admin_token'));
  const expected = Buffer.from(state.adminToken ?? '');
  if (expected.length === 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new RequestError('forbidden', 'polo scores can only be changed with the registry admin token');
  }
}

export const handleUpdatePoloScore: Handler = async (state, req) => {
  requireAdmin(state, req);
  const id = u32Field(req.msg, 'node_id');
  const delta = intField(req.msg, 'delta');
  if (delta === undefined) throw new RequestError('invalid_argument', 'delta is required');
  const node = await registeredNode(state, id);
  const updated = await state.store.updateNode(id, { poloScore: node.poloScore + delta });
  return scoreReply('update_polo_score_ok', id, updated.poloScore);
};

export const handleSetPoloScore: Handler = async (state, req) => {
  requireAdmin(state, req);
  const id = u32Field(req.msg, 'node_id');
  const score = intField(req.msg, 'polo_score');
  if (score === undefined) throw new RequestError('invalid_argument', 'polo_score is required');
  await registeredNode(state, id);
  const updated = await state.store.updateNode(id, { poloScore: score });
  return scoreReply('set_polo_score_ok', id, updated.poloScore);
};

export const handleBeaconRegister: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'beacon_id');
  const addr = strField(req.msg, 'addr');
  if (id === 0) throw new RequestError('invalid_argument', 'beacon_id must be a non-zero u32');
  if (addr === '' || addr.length > 256) throw new RequestError('invalid_argument', 'addr must be a host:port string');
  await state.store.upsertBeacon({ id, addr, expiresAt: state.now() + BEACON_TTL_MS });
  return { type: 'beacon_register_ok', beacon_id: id };
};

export const handleBeaconList: Handler = async (state) => {
  const beacons = (await state.store.listBeacons(state.now())).map((b): JsonObject => ({ id: b.id, addr: b.addr }));
  return { type: 'beacon_list_ok', beacons };
};
