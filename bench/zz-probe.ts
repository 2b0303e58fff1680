import { readFileSync } from 'node:fs';
import { jsonData, runPilotctl, trustedPair } from './lib.js';

const cpu = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  console.log(`pid ${pid} utime ${Number(f[11]) * 10} stime ${Number(f[12]) * 10}`);
  return (Number(f[11]) + Number(f[12])) * 10; // ms
};
const pair = await trustedPair();
try {
  await runPilotctl(pair.a, ['bench', pair.b.address, '20', '--json'], 90_000);
  const pa = pair.a.proc.child.pid!, pb = pair.b.proc.child.pid!;
  const size = Number(process.env.SIZE ?? 50);
  const c0 = [cpu(pa), cpu(pb)];
  const t0 = performance.now();
  const samples: string[] = [];
  const timer = setInterval(async () => {
    const info = await pair.da.info();
    const c = info.conn_list.find((x) => x.remote_port === 7 && x.state === 'ESTABLISHED');
    if (c) samples.push(`t=${Math.round(performance.now() - t0)} srtt=${c.srtt_ms} cwnd=${c.cong_win} inflight=${c.in_flight} peerwin=${c.peer_recv_win} recvwin=${c.recv_win} retx=${c.retransmits} fast=${c.fast_retx} sent=${c.bytes_sent} recv=${c.bytes_recv} ooo=${c.ooo_buf}`);
  }, 200);
  const out = await runPilotctl(pair.a, ['bench', pair.b.address, String(size), '--json'], 90_000);
  clearInterval(timer);
  const ms = performance.now() - t0;
  const c1 = [cpu(pa), cpu(pb)];
  console.log(samples.join('\n'));
  console.log(JSON.stringify(jsonData('bench', out)));
  console.log(`wall ${Math.round(ms)} ms; cpu A ${c1[0]! - c0[0]!} ms, B ${c1[1]! - c0[1]!} ms; per MB A ${((c1[0]! - c0[0]!) / (size * 1.048576)).toFixed(1)} B ${((c1[1]! - c0[1]!) / (size * 1.048576)).toFixed(1)}`);
} finally {
  await pair.close();
}
