/** Codes carried in the `code` field of an error reply (the reference sends no code at all). */
export type ReplyErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'bad_signature'
  | 'replay'
  | 'forbidden'
  | 'untrusted'
  | 'offline'
  | 'rate_limited'
  | 'unknown_type'
  | 'protocol'
  | 'read_only'
  | 'internal';

/** Thrown by a handler to refuse a request; the server turns it into an error reply. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly code: ReplyErrorCode,
    message: string,
  ) {
    super(message);
  }
}
