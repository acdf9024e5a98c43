/*
 * bench/walarchive/floor.js — a minimal synchronous WAL receiver on the
 * walarchive worker's stack, for `bench/walarchive/run --floor`: the
 * same Node.js 18 (pg_tsworker_node), node-postgres replication
 * connection, socket (stream-socket.js) and pg-copy-streams both() stream,
 * and per turn only what a synchronous receiver must: write the XLogData
 * into one preallocated file, fdatasync it, send a Standby status update.
 * No segment files, status, timeouts or timeline handling: not an archive.
 * It shows how much of the worker's latency is the stack's and how much
 * the worker's own code.
 *
 *   pg_tsworker_node floor.js RUNTIME_DIR HOST PORT USER SLOT DIR APPLICATION_NAME
 *
 * RUNTIME_DIR: the installed runtime ($(pg_config --sharedir)/pg_tsworker);
 * it loads three of the worker's compiled modules from there
 * (dist/workers/walarchive/stream-socket.js, messages.js and walfile.js),
 * so that it reads, zero-fills and replies as the worker does. HOST: a host name or, as run.ts
 * passes it, the source's Unix socket directory. Streams from the start of
 * the source's current segment on its timeline until SIGINT/SIGTERM;
 * writes DIR/floor.wal (one 16 MB file, zero-filled 64 kB at a time as
 * the worker's synchronous segments are, and reused). It is a reference
 * point, not a lower bound: its latency moves with the machine as the
 * worker's does, and a round may find either one ahead.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const [runtimeDir, host, port, user, slot, dir, app] = process.argv.slice(2);
if (!app) {
  process.stderr.write('usage: floor.js RUNTIME_DIR HOST PORT USER SLOT DIR APPLICATION_NAME\n');
  process.exit(2);
}
const pg = require(path.join(runtimeDir, 'node_modules/pg'));
const { both } = require(path.join(runtimeDir, 'node_modules/pg-copy-streams'));
const { streamSocket } = require(path.join(runtimeDir, 'dist/workers/walarchive/stream-socket.js'));
const { STATUS_UPDATE_SIZE, viewOf, writeStatusUpdate } = require(path.join(runtimeDir, 'dist/workers/walarchive/messages.js'));
const { writeZeros, ZERO_WRITE_SYNC } = require(path.join(runtimeDir, 'dist/workers/walarchive/walfile.js'));

const SEG = 16 * 1024 * 1024;

async function main() {
  const socket = streamSocket(1 << 20);
  const client = new pg.Client({ host, port: Number(port), user, database: 'postgres', replication: 'true', application_name: app, stream: socket });
  await client.connect();
  const id = (await client.query('IDENTIFY_SYSTEM')).rows[0];
  const [hi, lo] = id.xlogpos.split('/').map((h) => parseInt(h, 16));
  const start = hi * 2 ** 32 + lo - (lo % SEG);
  const fd = fs.openSync(path.join(dir, 'floor.wal'), 'w+', 0o600);
  // zeroed as the worker zeroes a synchronous archive's segments: the large page cache folios of
  // one 16 MB write would make every small write cost more
  writeZeros(fd, 0, SEG, ZERO_WRITE_SYNC);
  fs.fsyncSync(fd);
  const q = both(`START_REPLICATION SLOT "${slot}" PHYSICAL ${Math.floor(start / 2 ** 32).toString(16)}/${(start % 2 ** 32).toString(16)} TIMELINE ${id.timeline}`, {
    alignOnCopyDataFrame: true,
    readableHighWaterMark: 1 << 20,
  });
  client.query(q);
  const status = Buffer.allocUnsafe(STATUS_UPDATE_SIZE);
  const view = viewOf(status);
  let end = 0n;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    fs.fdatasyncSync(fd);
    writeStatusUpdate(status, view, end, end, false);
    socket.cork();
    q.flushChunk(Buffer.from(status));
    socket.uncork();
  };
  q.on('data', (p) => {
    // Keepalives are not answered: under the bench's load the next flush's status update comes within
    // a turn; an idle source asking for a reply would time this program out (wal_sender_timeout).
    if (p[0] !== 0x77) return;
    const s = p.readUInt32BE(1) * 2 ** 32 + p.readUInt32BE(5);
    const n = p.length - 25;
    const off = s % SEG;
    const first = Math.min(n, SEG - off); // the file holds one segment: wrap around
    fs.writeSync(fd, p, 25, first, off);
    if (first < n) fs.writeSync(fd, p, 25 + first, n - first, 0);
    end = BigInt(s + n);
    if (!scheduled) {
      scheduled = true;
      process.nextTick(flush);
    }
  });
  q.on('error', (err) => {
    process.stderr.write(`floor.js: ${err.message}\n`);
    process.exit(1);
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
main().catch((err) => {
  process.stderr.write(`floor.js: ${err.message}\n`);
  process.exit(1);
});
