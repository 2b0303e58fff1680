import type Database from 'better-sqlite3';

/**
 * Group commit for a SQLite connection in synchronous=FULL mode: the writes of one event-loop
 * turn run inside one transaction, committed (one fsync) once the turn's I/O callbacks are done.
 * A writer calls `begin()` before its statements and waits for `durable()` before acknowledging
 * anything, so a reply still never claims a change that a crash could lose; many concurrent
 * writers share one fsync instead of paying one each. Statements run as before meanwhile (the
 * store's own transactions become savepoints), so reads in the same process see them at once.
 */
export class SqliteGroupCommit {
  #waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #scheduled = false;

  constructor(private readonly db: Database.Database) {}

  /** Opens the turn's transaction if none is open. */
  begin(): void {
    if (this.#scheduled || !this.db.open) return;
    if (this.db.inTransaction) return; // someone else's transaction: its own commit covers the writes
    this.db.exec('BEGIN IMMEDIATE');
    this.#scheduled = true;
    setImmediate(() => this.commit());
  }

  /** Resolves once everything written so far is committed; rejects if that commit failed. */
  durable(): Promise<void> {
    if (!this.#scheduled) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Commits the open batch now (also before the connection closes). */
  commit(): void {
    if (!this.#scheduled) return;
    this.#scheduled = false;
    const waiters = this.#waiters;
    this.#waiters = [];
    try {
      // A statement error of the kind that rolls back the whole transaction (disk full, I/O)
      // leaves none open: then nothing of the batch was kept.
      if (!this.db.inTransaction) throw new Error('the write batch was rolled back');
      this.db.exec('COMMIT');
    } catch (err) {
      if (this.db.open && this.db.inTransaction) this.db.exec('ROLLBACK');
      const error = err instanceof Error ? err : new Error(String(err));
      for (const w of waiters) w.reject(error);
      return;
    }
    for (const w of waiters) w.resolve();
  }
}
