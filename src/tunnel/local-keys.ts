import { TunnelKeyPair, signAuth, type Identity } from '../crypto/index.js';
import { encodePila } from '../protocol/tunnel.js';

/**
 * Our side of the authenticated key exchange (§3.6): the per-process X25519 key pair, our PILA
 * frame, and the AES key shared with a peer's X25519 key.
 */
export class LocalKeys {
  readonly keyPair = TunnelKeyPair.generate();
  readonly #identity: Identity;
  #pila: { nodeId: number; frame: Uint8Array } | undefined;

  constructor(identity: Identity) {
    this.#identity = identity;
  }

  /** Signs with the node's Ed25519 identity key (beacon proofs). */
  sign(bytes: Uint8Array): Uint8Array {
    return this.#identity.sign(bytes);
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

  /** The AES key shared with the owner of `peerX25519`; undefined for an unusable key. */
  deriveKey(peerX25519: Uint8Array): Uint8Array | undefined {
    try {
      return this.keyPair.tunnelKey(peerX25519);
    } catch {
      return undefined;
    }
  }
}
