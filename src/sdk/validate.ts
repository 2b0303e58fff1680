import { PilotError } from '../errors.js';
import { formatAddr, makeAddr, parseAddr, type Addr } from '../protocol/address.js';

/** Argument checks shared by the SDK entry points; each throws PilotError 'invalid_argument'. */

export function toAddr(target: Addr | string): Addr {
  if (typeof target === 'string') {
    const parsed = parseAddr(target);
    if (!parsed.ok) throw new PilotError('invalid_argument', parsed.error.message);
    return parsed.value;
  }
  try {
    return makeAddr(target.network, target.node);
  } catch (err) {
    throw new PilotError('invalid_argument', err instanceof Error ? err.message : String(err));
  }
}

export function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff)
    throw new PilotError('invalid_argument', `invalid port: ${port}`);
  return port;
}

export function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw new PilotError('invalid_argument', `invalid ${what}: ${value}`);
  return value;
}

export function target(addr: Addr, port: number): string {
  return `${formatAddr(addr)}:${port}`;
}
