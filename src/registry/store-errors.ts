/** A uniqueness the store enforces was violated (a concurrent change by another registry process). */
export class StoreConflictError extends Error {
  constructor(
    readonly field: 'hostname' | 'public_key',
    message: string,
  ) {
    super(message);
    this.name = 'StoreConflictError';
  }
}
