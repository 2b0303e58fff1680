const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding, as Go's base64.StdEncoding writes it. */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Strict standard-base64 decode (padding required, no URL alphabet, no whitespace).
 * Buffer.from(s, 'base64') silently skips junk, so it cannot tell a valid key from garbage.
 */
export function fromBase64(text: string): Uint8Array | undefined {
  if (!STD_BASE64.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'base64'));
}
