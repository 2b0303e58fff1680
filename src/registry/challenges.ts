/** Challenges of our registry extensions; the reference's are in protocol/registry-frame.ts. */

/** Signed `register`: proves possession of the registering key. */
export const registerChallenge = (publicKey: string): string => `register:${publicKey}`;

/** The handshake push channel. */
export const watchChallenge = (nodeId: number): string => `watch_handshakes:${nodeId}`;
