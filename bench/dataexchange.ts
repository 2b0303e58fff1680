import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sendFile } from '../src/sdk/dataexchange.js';
import { Driver } from '../src/sdk/driver.js';
import { DATA_EXCHANGE_PORT, isAck } from '../src/protocol/dataexchange.js';
import { FrameChannel } from '../src/services/dataexchange/frame-channel.js';
import { Cluster } from '../test/e2e/cluster.js';
import { until } from '../test/wait.js';

/**
 * Data exchange throughput between two real daemons on loopback: 1 KiB TEXT messages over one
 * connection (each acknowledged after fsync), then one file of the largest size a frame carries.
 * Prints one JSON object on the last line.
 */

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const MESSAGE_BYTES = 1024;
const WINDOW = 32;
const FILE_NAME = 'bench.bin';
const FILE_BYTES = 16 * 1024 * 1024 - 2 - FILE_NAME.length;

const cluster = await Cluster.start();
const work = await mkdtemp(join(tmpdir(), 'pilot-dx-bench-'));
try {
  process.env.PILOT_DX_RATE = '1000000';
  process.env.PILOT_DX_QUOTA_BYTES = String(8 * 1024 * 1024 * 1024);
  const [a, b] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('b')]);
  const [da, db] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket)]);
  await da.handshake(b.nodeId, 'bench');
  await until('the request at b', async () => (await db.pending()).some((p) => p.node_id === a.nodeId));
  await db.approve(a.nodeId);
  await until('a trusts b', async () => (await da.trusted()).some((t) => t.node_id === b.nodeId));

  const channel = new FrameChannel(await da.dial(b.address, DATA_EXCHANGE_PORT));
  const payload = Buffer.alloc(MESSAGE_BYTES, 0x61);
  const started = performance.now();
  let sent = 0;
  let acked = 0;
  while (acked < MESSAGES) {
    while (sent < MESSAGES && sent - acked < WINDOW) {
      await channel.sendFrame(1, payload);
      sent++;
    }
    const reply = await channel.reply();
    if (!isAck(reply)) throw new Error(`refused: ${reply}`);
    acked++;
  }
  const messageSecs = (performance.now() - started) / 1000;
  channel.close();

  const path = join(work, FILE_NAME);
  await writeFile(path, Buffer.alloc(FILE_BYTES, 0x5a));
  const fileStarted = performance.now();
  await sendFile(da, b.address, path);
  const fileSecs = (performance.now() - fileStarted) / 1000;

  await Promise.all([da.close(), db.close()]);
  console.log(
    `messages: ${MESSAGES} x ${MESSAGE_BYTES} B in ${messageSecs.toFixed(2)} s; file: ${FILE_BYTES} B in ${fileSecs.toFixed(2)} s`,
  );
  console.log(
    JSON.stringify({
      messages_per_s: Math.round(MESSAGES / messageSecs),
      message_bytes: MESSAGE_BYTES,
      file_mb_s: Number((FILE_BYTES / 1048576 / fileSecs).toFixed(1)),
      file_bytes: FILE_BYTES,
    }),
  );
} finally {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
