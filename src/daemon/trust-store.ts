import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../crypto/atomic-file.js';
import type { Logger } from '../log.js';

export interface TrustedPeer {
  nodeId: number;
  publicKey: string;
  /** Unix ms. */
  approvedAt: number;
  mutual: boolean;
  network: number;
}

export interface PendingPeer {
  nodeId: number;
  publicKey: string;
  justification: string;
  /** Unix ms. */
  receivedAt: number;
}

/** RFC 3339 in local time with the offset, second precision, as the reference writes trust.json. */
function localRfc3339(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number): string => String(Math.abs(n)).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
}

function time(v: unknown): number {
  const t = typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : Date.now();
}

/**
 * Owner of `trust.json` (PROTOCOL.md §6.4): the trusted and pending peers of this node, written
 * atomically after every change in the reference's layout.
 */
export class TrustStore {
  private readonly trusted = new Map<number, TrustedPeer>();
  private readonly pending = new Map<number, PendingPeer>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string | undefined,
    private readonly log?: Logger,
  ) {}

  /** Loads the file if it exists; a damaged file is logged and kept aside, never fatal. */
  static async open(path: string | undefined, log?: Logger): Promise<TrustStore> {
    const store = new TrustStore(path, log);
    if (!path) return store;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return store;
    }
    try {
      const doc = JSON.parse(text) as { trusted?: unknown; pending?: unknown };
      for (const t of Array.isArray(doc.trusted) ? (doc.trusted as Record<string, unknown>[]) : []) {
        const id = num(t.node_id);
        if (id === undefined) continue;
        store.trusted.set(id, {
          nodeId: id,
          publicKey: typeof t.public_key === 'string' ? t.public_key : '',
          approvedAt: time(t.approved_at),
          mutual: t.mutual === true,
          network: num(t.network) ?? 0,
        });
      }
      for (const p of Array.isArray(doc.pending) ? (doc.pending as Record<string, unknown>[]) : []) {
        const id = num(p.node_id);
        if (id === undefined) continue;
        store.pending.set(id, {
          nodeId: id,
          publicKey: typeof p.public_key === 'string' ? p.public_key : '',
          justification: typeof p.justification === 'string' ? p.justification : '',
          receivedAt: time(p.received_at),
        });
      }
    } catch (err) {
      log?.warn({ err, path }, 'trust file is not valid JSON; starting with no trusted peers');
    }
    return store;
  }

  isTrusted(nodeId: number): boolean {
    return this.trusted.has(nodeId);
  }

  getTrusted(nodeId: number): TrustedPeer | undefined {
    return this.trusted.get(nodeId);
  }

  getPending(nodeId: number): PendingPeer | undefined {
    return this.pending.get(nodeId);
  }

  listTrusted(): TrustedPeer[] {
    return [...this.trusted.values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  listPending(): PendingPeer[] {
    return [...this.pending.values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  async trust(peer: TrustedPeer): Promise<void> {
    const old = this.trusted.get(peer.nodeId);
    this.trusted.set(peer.nodeId, { ...peer, publicKey: peer.publicKey || old?.publicKey || '' });
    this.pending.delete(peer.nodeId);
    await this.save();
  }

  async addPending(peer: PendingPeer): Promise<void> {
    this.pending.set(peer.nodeId, peer);
    await this.save();
  }

  /** Removes the peer from both lists; tells whether it was trusted. */
  async remove(nodeId: number): Promise<boolean> {
    const was = this.trusted.delete(nodeId);
    const hadPending = this.pending.delete(nodeId);
    if (was || hadPending) await this.save();
    return was;
  }

  async removePending(nodeId: number): Promise<boolean> {
    const had = this.pending.delete(nodeId);
    if (had) await this.save();
    return had;
  }

  async setPublicKey(nodeId: number, publicKey: string): Promise<void> {
    const t = this.trusted.get(nodeId);
    if (!t || t.publicKey === publicKey) return;
    t.publicKey = publicKey;
    await this.save();
  }

  private serialize(): string {
    const trusted = this.listTrusted().map((t) => ({
      node_id: t.nodeId,
      public_key: t.publicKey,
      approved_at: localRfc3339(t.approvedAt),
      mutual: t.mutual,
      ...(t.network ? { network: t.network } : {}),
    }));
    const pending = this.listPending().map((p) => ({
      node_id: p.nodeId,
      ...(p.publicKey ? { public_key: p.publicKey } : {}),
      ...(p.justification ? { justification: p.justification } : {}),
      received_at: localRfc3339(p.receivedAt),
    }));
    const doc: Record<string, unknown> = { trusted: trusted.length > 0 ? trusted : null };
    if (pending.length > 0) doc.pending = pending;
    return JSON.stringify(doc, null, 2);
  }

  /** Writes are serialised so a slow disk never reorders two saves. */
  private save(): Promise<void> {
    const path = this.path;
    if (!path) return Promise.resolve();
    const next = this.writing.then(() => writeFileAtomic(path, this.serialize(), { mode: 0o600 }));
    this.writing = next.catch((err: unknown) => this.log?.error({ err, path }, 'could not write trust file'));
    return next;
  }
}
