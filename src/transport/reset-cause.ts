/**
 * Why a pilot-ts node refused or reset a connection, carried as the payload of its RST. A Go node
 * reads nothing of a RST but its flags and ports (PROTOCOL.md §7.4 and §7.9: "RST received → state
 * CLOSED, removed"; the reference's handler never looks at the payload), so to it every refusal is
 * the plain "connection refused" it always was; a pilot-ts dialer can tell "port full" from "no
 * listener". A RST of the reference has no payload; any payload that is not exactly this shape is
 * ignored, as if absent.
 */
export type ResetCause =
  /** Nothing listens on the port. */
  | 'no_listener'
  /** The port has no free connection slot (and the dialer already holds its share of it). */
  | 'port_full'
  /** The node's connection table is full (and the dialer already holds its share of it). */
  | 'table_full'
  /** The node does not trust the dialer (only the handshake port is open to it). */
  | 'untrusted'
  /** The connection was closed to make room for a connection of another node. */
  | 'evicted';

/** "PRST", a version byte, then the cause code. */
const MAGIC = [0x50, 0x52, 0x53, 0x54, 0x01] as const;
const CODES: readonly ResetCause[] = ['no_listener', 'port_full', 'table_full', 'untrusted', 'evicted'];

export function encodeResetCause(cause: ResetCause): Uint8Array {
  return Uint8Array.of(...MAGIC, CODES.indexOf(cause) + 1);
}

/** The cause a RST's payload names, or undefined (a reference RST, or bytes of another shape). */
export function decodeResetCause(payload: Uint8Array): ResetCause | undefined {
  if (payload.length !== MAGIC.length + 1) return undefined;
  for (let i = 0; i < MAGIC.length; i++) if (payload[i] !== MAGIC[i]) return undefined;
  return CODES[(payload[MAGIC.length] as number) - 1];
}
