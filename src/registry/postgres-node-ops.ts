import { PgBatch } from './postgres-batch.js';
import type { NodeRow } from './store-rows.js';
import type { NewNode } from './store.js';

export type VersionedRow = NodeRow & { version: number };

type NodeOp =
  | { readonly kind: 'id'; readonly id: number }
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'create'; readonly node: NewNode };

/** A read's row or none; a create's new row, none (its key is taken) or why it failed. */
type NodeResult = VersionedRow | undefined | { readonly failed: unknown };

/** Runs one statement (named by the caller's numbering) and returns its rows. */
export type RunRows = <R extends object>(text: string, values: unknown[]) => Promise<R[]>;

/**
 * Reads of node records by id or key and inserts of new nodes, all those of one event-loop turn
 * in one statement (one round trip, one commit): a registration reads its key and, a moment
 * later, inserts it, so concurrent registrations share statements whatever step each is at. The
 * reads see the table as it was before the statement's inserts. Keys are inserted in order, so
 * that two processes inserting overlapping batches never deadlock; a key already stored (or twice
 * in the batch) gets no row. A new node is seen now (and proven, if it signed): the registration
 * records these times next and finds them stored (PostgresSharedState.recordLiveness).
 */
export class PgNodeOps {
  readonly #batch = new PgBatch<NodeOp, NodeResult>((ops) => this.#run(ops));

  constructor(private readonly rows: RunRows) {}

  byId(id: number): Promise<VersionedRow | undefined> {
    return this.#read({ kind: 'id', id });
  }

  byKey(key: string): Promise<VersionedRow | undefined> {
    return this.#read({ kind: 'key', key });
  }

  /** The new row, or undefined when the key is taken. */
  async create(node: NewNode): Promise<VersionedRow | undefined> {
    const result = await this.#batch.add({ kind: 'create', node });
    if (result !== undefined && 'failed' in result) throw result.failed;
    return result;
  }

  async #read(op: NodeOp): Promise<VersionedRow | undefined> {
    const result = await this.#batch.add(op);
    return result !== undefined && 'failed' in result ? undefined : result;
  }

  async #run(ops: NodeOp[]): Promise<NodeResult[]> {
    const writes = ops.some((op) => op.kind === 'create');
    const reads = ops.some((op) => op.kind !== 'create');
    if (!writes || !reads) return this.#statement(ops);
    try {
      return await this.#statement(ops);
    } catch (failed) {
      // A failed insert fails its creates only: the reads are asked again alone.
      const readOps = ops.filter((op) => op.kind !== 'create');
      const answers = await this.#statement(readOps);
      const byOp = new Map(readOps.map((op, i) => [op, answers[i]]));
      return ops.map((op) => (op.kind === 'create' ? { failed } : byOp.get(op)));
    }
  }

  async #statement(ops: NodeOp[]): Promise<NodeResult[]> {
    const ids = new Set<number>();
    const keys = new Set<string>();
    const creates: NewNode[] = [];
    for (const op of ops) {
      if (op.kind === 'id') ids.add(op.id);
      else if (op.kind === 'key') keys.add(op.key);
      else creates.push(op.node);
    }
    const values: unknown[] = [];
    const parts: string[] = [];
    let prefix = '';
    if (creates.length > 0) {
      const sorted = [...creates].sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));
      values.push(
        sorted.map((n) => n.publicKey),
        sorted.map((n) => n.owner),
        sorted.map((n) => n.realAddr),
        sorted.map((n) => n.signsBody === true),
        Date.now(),
      );
      prefix = `WITH c AS (INSERT INTO nodes (id, public_key, owner, real_addr, signs_body, last_seen, last_proven)
        SELECT nextval('node_ids'), k, o, a, s, $5, CASE WHEN s THEN $5::bigint END
        FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[]) AS v(k, o, a, s)
        ON CONFLICT (public_key) DO NOTHING RETURNING *) `;
      parts.push(`SELECT 'c' AS op, * FROM c`);
    }
    if (keys.size > 0) {
      values.push([...keys]);
      parts.push(`SELECT 'k' AS op, * FROM nodes WHERE public_key = ANY($${values.length}::text[])`);
    }
    if (ids.size > 0) {
      values.push([...ids]);
      parts.push(`SELECT 'i' AS op, * FROM nodes WHERE id = ANY($${values.length}::bigint[])`);
    }
    const rows = await this.rows<VersionedRow & { op: string }>(prefix + parts.join(' UNION ALL '), values);
    const created = new Map<string, VersionedRow>();
    const byKey = new Map<string, VersionedRow>();
    const byId = new Map<number, VersionedRow>();
    for (const { op, ...row } of rows) {
      if (op === 'c') created.set(row.public_key, row);
      else if (op === 'k') byKey.set(row.public_key, row);
      else byId.set(row.id, row);
    }
    const inserted = new Set<string>();
    return ops.map((op) => {
      if (op.kind === 'id') return byId.get(op.id);
      if (op.kind === 'key') return byKey.get(op.key);
      // The first of two creates of one key gets the row.
      if (inserted.has(op.node.publicKey)) return undefined;
      inserted.add(op.node.publicKey);
      return created.get(op.node.publicKey);
    });
  }
}
