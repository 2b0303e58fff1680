export { CryptoError, type CryptoErrorCode } from './errors.js';
export { ensureDir, writeFileAtomic, type AtomicWriteOptions } from './atomic-file.js';
export {
  Identity,
  verifySignature,
  encodeIdentityFile,
  decodeIdentityFile,
  saveIdentity,
  loadIdentity,
  loadOrCreateIdentity,
} from './identity.js';
export { ED25519_PUBLIC_KEY_SIZE, ED25519_SEED_SIZE, ED25519_SIGNATURE_SIZE } from './ed25519.js';
export { TunnelKeyPair, deriveTunnelKey, X25519_KEY_SIZE, TUNNEL_KEY_SIZE } from './tunnel-key.js';
export { ReplayWindow, REPLAY_WINDOW_SIZE, type ReplayVerdict } from './replay-window.js';
export {
  TunnelSession,
  OpenError,
  NONCE_SIZE,
  NONCE_PREFIX_SIZE,
  TAG_SIZE,
  MAX_COUNTER,
  type SealedFrame,
  type OpenErrorCode,
  type OpenResult,
  type TunnelSessionOptions,
} from './tunnel-session.js';
export {
  authMessage,
  signAuth,
  verifyAuth,
  AUTH_MESSAGE_SIZE,
  type AuthClaim,
  type AuthVerdict,
} from './auth-exchange.js';
export { signChallenge, verifyChallenge } from './registry-signing.js';
export { fromBase64, toBase64 } from './base64.js';
