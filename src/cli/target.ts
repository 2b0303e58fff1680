import { PilotError } from '../errors.js';
import { formatAddr, parseAddr, type Addr } from '../protocol/address.js';
import { isJsonObject } from '../protocol/json.js';
import { invalid, isHostname, parseDirectTarget } from './args.js';
import type { DaemonClient } from './context.js';

/** A target as the user wrote it and the address it stands for. */
export interface Target {
  readonly text: string;
  readonly addr: Addr;
}

/** Accepts a node id (network 0), an address text, or a hostname resolved through the daemon. */
export async function resolveTarget(driver: DaemonClient, text: string): Promise<Target> {
  const direct = parseDirectTarget(text);
  if (direct !== undefined) return { text, addr: direct };
  if (!isHostname(text)) {
    throw invalid(
      `invalid target ${JSON.stringify(text)}`,
      'give a node id (5), an address (0:0000.0000.0005) or a hostname',
    );
  }
  let reply: unknown;
  try {
    reply = await driver.resolveHostname(text);
  } catch (err) {
    throw hostnameError(text, err);
  }
  const address = isJsonObject(reply) ? reply.address : undefined;
  const parsed = typeof address === 'string' ? parseAddr(address) : undefined;
  if (parsed === undefined || !parsed.ok) {
    throw new PilotError('internal', `resolving ${JSON.stringify(text)} returned no valid address`);
  }
  return { text, addr: parsed.value };
}

/**
 * Why a hostname could not be resolved, as the user should hear it: not found (or refused, all a
 * Go registry says), or the real cause when the registry or the daemon could not be asked at all.
 */
export function hostnameError(hostname: string, err: unknown): PilotError {
  // A failure without a code (not from the SDK) counts as not found, as the daemon's answer.
  const code = err instanceof PilotError ? err.code : 'not_found';
  if (code === 'not_found' || code === 'refused') {
    return new PilotError(
      'not_found',
      `hostname ${JSON.stringify(hostname)} not found`,
      'the node may be private, offline, or not trusting you; try its address',
      { cause: err },
    );
  }
  if (code === 'connection_failed' || code === 'timeout' || code === 'unavailable') {
    const detail = err instanceof Error ? err.message : String(err);
    return new PilotError(
      code,
      `cannot resolve hostname ${JSON.stringify(hostname)}: the registry is unreachable (${detail})`,
      "see the registry's state with: pilotctl daemon status",
      { cause: err },
    );
  }
  return err as PilotError;
}

export function targetLabel(target: Target): string {
  const addr = formatAddr(target.addr);
  return target.text === addr ? addr : `${target.text} (${addr})`;
}
