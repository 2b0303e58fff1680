import { verifyAuth } from '../crypto/index.js';
import type { PilaFrame } from '../protocol/tunnel.js';
import type { RegistryKeys } from '../registry-keys.js';

export type PilaVerdict =
  | 'ok'
  | 'unknown_key'
  | 'key_mismatch'
  | 'bad_signature'
  | 'lookup_busy'
  | 'registry_unreachable';

/** Checks a peer's PILA against the Ed25519 key the registry holds for its sender. */
export function checkPila(frame: PilaFrame, registryKey: Uint8Array): PilaVerdict {
  return verifyAuth(
    {
      node: frame.senderNode,
      x25519PublicKey: frame.x25519Public,
      ed25519PublicKey: frame.ed25519Public,
      signature: frame.signature,
    },
    registryKey,
  );
}

/** Verification of a peer's PILA against the key the registry holds for it (§3.6), for the driver. */
export class Authenticator {
  readonly #keys: RegistryKeys;

  constructor(keys: RegistryKeys) {
    this.#keys = keys;
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
    return checkPila(frame, found.key);
  }
}
