import { NetStack } from '../../src/daemon/net-stack.js';
import type { Addr } from '../../src/protocol/address.js';
import { detachPayload, type Packet } from '../../src/protocol/packet.js';

/** Two in-process stacks at `a` and `b` joined by an in-memory wire (the real clock drives both). */
export function stackPair(aAddr: Addr, bAddr: Addr): { a: NetStack; b: NetStack; close: () => void } {
  const stacks = new Map<number, NetStack>();
  const wire = (p: Packet): void => {
    setImmediate(() => stacks.get(p.dst.node)?.handlePacket(detachPayload(p)));
  };
  const a = new NetStack({ localAddr: aAddr, transmit: wire });
  const b = new NetStack({ localAddr: bAddr, transmit: wire });
  stacks.set(aAddr.node, a);
  stacks.set(bAddr.node, b);
  return {
    a,
    b,
    close: () => {
      a.close();
      b.close();
    },
  };
}
