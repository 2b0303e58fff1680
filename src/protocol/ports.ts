/** Well-known ports and port ranges (PROTOCOL.md §1.3). */
export const Port = {
  Ping: 0,
  Control: 1,
  Echo: 7,
  Nameserver: 53,
  Http: 80,
  Secure: 443,
  Handshake: 444,
  StdIO: 1000,
  DataExchange: 1001,
  EventStream: 1002,
  TaskSubmit: 1003,
} as const;

export const PORT_RESERVED_MAX = 1023;
export const PORT_REGISTERED_MAX = 49151;
export const PORT_EPHEMERAL_MIN = 49152;
export const PORT_EPHEMERAL_MAX = 65535;

export function isValidPort(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}
