import { TunnelKeyPair, signAuth, verifyAuth, type Identity } from '../crypto/index.js';
import { encodePila, type PilaFrame } from '../protocol/tunnel.js';
import type { RegistryKeys } from '../registry-keys.js';

export type PilaVerdict =
  | 'ok'
  | 'unknown_key'
  | 'key_mismatch'
  | 'bad_signature'
  | 'lookup_busy'
  | 'registry_unreachable';

/**
 * Our side of the authenticated key exchange: the per-process X25519 key pair, our PILA frame,
 * and verification of a peer's PILA against the key the registry holds for it (§3.6).
 */
export class Authenticator {
  readonly keyPair = TunnelKeyPair.generate();
  readonly #identity: Identity;
  readonly #keys: RegistryKeys;
  #pila: { nodeId: number; frame: Uint8Array } | undefined;

  constructor(identity: Identity, keys: RegistryKeys) {
    this.#identity = identity;
    this.#keys = keys;
  }

  /** Our PILA for `nodeId` (signed once per node id). */
  pila(nodeId: number): Uint8Array {
    if (this.#pila?.nodeId !== nodeId) {
      const x25519Public = this.keyPair.publicKey;
      const frame = encodePila({
        senderNode: nodeId,
        x25519Public,
        ed25519Public: this.#identity.publicKey,
        signature: signAuth(this.#identity, nodeId, x25519Public),
      });
      this.#pila = { nodeId, frame };
    }
    return this.#pila.frame;
  }

  /**
   * Checks the frame against the registry key; re-fetches once on failure (the node may have
   * re-registered). A re-fetch that cannot be made leaves the first verdict standing.
   */
  async verify(frame: PilaFrame): Promise<PilaVerdict> {
    const first = await this.#check(frame, false);
    if (first === 'ok' || first === 'lookup_busy' || first === 'registry_unreachable') return first;
    const second = await this.#check(frame, true);
    return second === 'lookup_busy' || second === 'registry_unreachable' ? first : second;
  }

  async #check(frame: PilaFrame, refresh: boolean): Promise<PilaVerdict> {
    const found = await this.#keys.get(frame.senderNode, refresh);
    if (found.status === 'busy') return 'lookup_busy';
    if (found.status === 'unreachable') return 'registry_unreachable';
    if (found.status === 'unknown') return 'unknown_key';
    return verifyAuth(
      {
        node: frame.senderNode,
        x25519PublicKey: frame.x25519Public,
        ed25519PublicKey: frame.ed25519Public,
        signature: frame.signature,
      },
      found.key,
    );
  }

  /** The AES key shared with the owner of `peerX25519`; undefined for an unusable key. */
  deriveKey(peerX25519: Uint8Array): Uint8Array | undefined {
    try {
      return this.keyPair.tunnelKey(peerX25519);
    } catch {
      return undefined;
    }
  }
}
