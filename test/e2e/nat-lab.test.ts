// The network-namespace NAT lab (test/netns/): runs here so that `npm test` includes it; it skips
// with one line saying why where it cannot run (not root, no netns or nftables).
import '../netns/nat.test.js';
