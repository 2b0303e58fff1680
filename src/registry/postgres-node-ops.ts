import { PgBatch } from './postgres-batch.js';
import type { NodeRow } from './store-rows.js';
import type { NewNode } from './store.js';

export type VersionedRow = NodeRow & { version: number };

/** A replay mark: the newest `signed_at` accepted from a key for a request type. */
export interface Mark {
  readonly publicKey: string;
  readonly type: string;
  readonly at: number;
}

type NodeOp =
  | { readonly kind: 'id'; readonly id: number }
  | { readonly kind: 'key'; readonly key: string }
  | { readonly kind: 'create'; readonly node: NewNode }
  | { readonly kind: 'mark'; readonly mark: Mark };

interface Answer {
  /** A read's row or a create's new one (none: not found, or the key is taken). */
  readonly row?: VersionedRow | undefined;
  /** A mark's: whether it advanced (false: a replay). */
  readonly advanced?: boolean;
  readonly failed?: unknown;
}

/** Runs one statement and returns its rows; `durable`: it must commit with the WAL synced. */
export type RunRows = <R extends object>(text: string, values: unknown[], durable: boolean) => Promise<R[]>;

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const markKey = (m: Mark): string => `${m.publicKey}|${m.type}`;

/**
 * Reads of node records by id or key, inserts of new nodes and replay marks, all those of one
 * event-loop turn in one statement (one round trip, one commit). A registration reads its key,
 * marks its signature and inserts its node, one after the other, so concurrent registrations
 * share statements whatever step each is at.
 *
 * - Marks come first, then inserts, each in key order, so that two processes whose statements
 *   touch the same rows take their locks in the same order and never deadlock. A mark advances
 *   only past an older `signed_at` (a conditional upsert decides which process saw it first); two
 *   marks of one key and type wait for separate statements.
 * - A key already stored (or twice in the batch) gets no new row. A new node is seen now (and
 *   proven, if it signed): the registration records these times next and finds them stored
 *   (PostgresSharedState.recordLiveness).
 * - The reads see the table as it was before the statement's inserts.
 * - A statement without inserts commits without waiting for the WAL sync (marks are volatile, see
 *   PostgresSharedState); one with inserts waits, and takes its marks along.
 * - A failed insert fails only the inserts: the rest is sent again alone.
 */
export class PgNodeOps {
  #unique = 0;
  readonly #batch = new PgBatch<NodeOp, Answer>(
    (ops) => this.#run(ops),
    (op) => (op.kind === 'mark' ? markKey(op.mark) : String(++this.#unique)),
  );

  constructor(private readonly rows: RunRows) {}

  async byId(id: number): Promise<VersionedRow | undefined> {
    return (await this.#batch.add({ kind: 'id', id })).row;
  }

  async byKey(key: string): Promise<VersionedRow | undefined> {
    return (await this.#batch.add({ kind: 'key', key })).row;
  }

  /** The new row, or undefined when the key is taken. */
  async create(node: NewNode): Promise<VersionedRow | undefined> {
    const answer = await this.#batch.add({ kind: 'create', node });
    if (answer.failed !== undefined) throw answer.failed;
    return answer.row;
  }

  /** Whether the mark advanced (false: a `signed_at` at least as late is recorded). */
  async mark(mark: Mark): Promise<boolean> {
    return (await this.#batch.add({ kind: 'mark', mark })).advanced === true;
  }

  async #run(ops: NodeOp[]): Promise<Answer[]> {
    const creates = ops.some((op) => op.kind === 'create');
    const others = ops.filter((op) => op.kind !== 'create');
    if (!creates || others.length === 0) return this.#statement(ops);
    try {
      return await this.#statement(ops);
    } catch (failed) {
      const answers = await this.#statement(others);
      const byOp = new Map<NodeOp, Answer | undefined>(others.map((op, i) => [op, answers[i]]));
      return ops.map((op) => byOp.get(op) ?? { failed });
    }
  }

  async #statement(ops: NodeOp[]): Promise<Answer[]> {
    const ids = new Set<number>();
    const keys = new Set<string>();
    const creates: NewNode[] = [];
    const marks: Mark[] = [];
    for (const op of ops) {
      if (op.kind === 'id') ids.add(op.id);
      else if (op.kind === 'key') keys.add(op.key);
      else if (op.kind === 'create') creates.push(op.node);
      else marks.push(op.mark);
    }
    const values: unknown[] = [];
    const at = (value: unknown): string => `$${values.push(value)}`;
    const ctes: string[] = [];
    const parts: string[] = [];
    if (marks.length > 0) {
      marks.sort((a, b) => byText(a.publicKey, b.publicKey) || byText(a.type, b.type));
      ctes.push(`m AS (INSERT INTO signed_at_marks (public_key, type, signed_at)
        SELECT * FROM unnest(${at(marks.map((m) => m.publicKey))}::text[], ${at(marks.map((m) => m.type))}::text[], ${at(marks.map((m) => m.at))}::bigint[])
        ON CONFLICT (public_key, type) DO UPDATE SET signed_at = EXCLUDED.signed_at
        WHERE signed_at_marks.signed_at < EXCLUDED.signed_at
        RETURNING public_key || '|' || type AS k)`);
      // Marks alone need no record columns; with records they are padded to the same columns.
      parts.push(
        ops.length === marks.length ? `SELECT 'm' AS op, k FROM m` : `SELECT 'm' AS op, k, (NULL::nodes).* FROM m`,
      );
    }
    if (creates.length > 0) {
      const sorted = [...creates].sort((a, b) => byText(a.publicKey, b.publicKey));
      const now = at(Date.now());
      ctes.push(`c AS (INSERT INTO nodes (id, public_key, owner, real_addr, signs_body, last_seen, last_proven)
        SELECT nextval('node_ids'), k, o, a, s, ${now}, CASE WHEN s THEN ${now}::bigint END
        FROM unnest(${at(sorted.map((n) => n.publicKey))}::text[], ${at(sorted.map((n) => n.owner))}::text[],
                    ${at(sorted.map((n) => n.realAddr))}::text[], ${at(sorted.map((n) => n.signsBody === true))}::boolean[]) AS v(k, o, a, s)
        ON CONFLICT (public_key) DO NOTHING RETURNING *)`);
      parts.push(`SELECT 'c' AS op, NULL AS k, * FROM c`);
    }
    if (keys.size > 0)
      parts.push(`SELECT 'k' AS op, NULL AS k, * FROM nodes WHERE public_key = ANY(${at([...keys])}::text[])`);
    if (ids.size > 0) parts.push(`SELECT 'i' AS op, NULL AS k, * FROM nodes WHERE id = ANY(${at([...ids])}::bigint[])`);
    const text = (ctes.length > 0 ? `WITH ${ctes.join(', ')} ` : '') + parts.join(' UNION ALL ');
    const rows = await this.rows<VersionedRow & { op: string; k: string | null }>(text, values, creates.length > 0);

    const advanced = new Set<string>();
    const created = new Map<string, VersionedRow>();
    const byKey = new Map<string, VersionedRow>();
    const byId = new Map<number, VersionedRow>();
    for (const { op, k, ...row } of rows) {
      if (op === 'm') advanced.add(k ?? '');
      else if (op === 'c') created.set(row.public_key, row);
      else if (op === 'k') byKey.set(row.public_key, row);
      else byId.set(row.id, row);
    }
    const inserted = new Set<string>();
    return ops.map((op): Answer => {
      if (op.kind === 'id') return { row: byId.get(op.id) };
      if (op.kind === 'key') return { row: byKey.get(op.key) };
      if (op.kind === 'mark') return { advanced: advanced.has(markKey(op.mark)) };
      // The first of two creates of one key gets the row.
      if (inserted.has(op.node.publicKey)) return {};
      inserted.add(op.node.publicKey);
      return { row: created.get(op.node.publicKey) };
    });
  }
}
