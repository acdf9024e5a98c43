/**
 * [switchover] `pg_tsworker_ctl rejoin` of a primary that crashed (its
 * postmaster SIGKILLed, a standby promoted) whose last checkpoint before the
 * fork lies in an older WAL segment: the crash recovery that must run before
 * pg_rewind ends with a shutdown checkpoint that removes every older segment
 * (wal_keep_size = 0, no slot), and pg_rewind then failed with "could not
 * find previous WAL record" (review 15 finding 1: 2 rejoins of 7; the member
 * could only be cloned again). rejoin now runs that recovery itself keeping
 * the WAL, archived segments included (archive_mode = on here, so segments
 * carry `.done` marks), and the member is rewound and streams.
 *
 * A standby whose WAL diverged on the same timeline (a crash recovery run
 * without standby.signal, as rejoin once did, wrote a checkpoint the leader
 * never wrote; review 14 finding 13) replays up to that record and then
 * stops for ever at the leader's different WAL; its promoter says
 * `replay_stuck` and `needs: rebuild` instead of `following`.
 *
 * A standby stopped while the leader recycled the WAL it needs (no slot,
 * wal_keep_size 0; review 14c finding L) never streams again, and was
 * reported healthy; it now says `replay_stuck` too, with PostgreSQL's
 * "has already been removed" in its advice, and /replica answers 503.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import type { Member } from './cluster-helpers';
import { clusterFixture } from './cluster-fixture';
import { PG_BIN, waitFor } from './harness/cluster';

const root = process.getuid?.() === 0;

describe('rejoin of a crashed primary whose last checkpoint is in an older WAL segment', { skip: root ? false : 'needs root' }, () => {
  // nothing keeps old segments but their archiving: what pg_rewind needs must survive by rejoin's care
  const { net, members, ops } = clusterFixture('rc', () => ({ wal_keep_size: '0', archive_mode: 'on', archive_command: '/bin/true' }), ['h']);

  async function ctlRejoin(m: Member): Promise<{ code: number; out: string }> {
    try {
      const r = await net().exec(m.host, ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'pg_tsworker_ctl'), 'rejoin', '-D', m.c.dataDir], { timeoutMs: 180_000 });
      return { code: 0, out: r.stdout.trim() };
    } catch (e) {
      return { code: 1, out: String((e as Error).message) };
    }
  }

  test('SIGKILLed primary, 3 WAL segments past its last checkpoint, its postmaster.pid naming PID 1: rejoin rewinds it, keeps the archive marks, and it streams', async (t) => {
    const old = await ops.leader();
    await old.c.query('CHECKPOINT');
    const ckptSegment = await old.c.queryText('SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()');
    // about 48 MB of WAL after that checkpoint, every segment received by both standbys
    await old.c.query(`CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 90000) g`);
    const end = await old.c.queryText('SELECT pg_current_wal_flush_lsn()');
    const endSegment = await old.c.queryText(`SELECT pg_walfile_name('${end}')`);
    assert.ok(parseInt(endSegment.slice(16), 16) - parseInt(ckptSegment.slice(16), 16) >= 2, `${ckptSegment} .. ${endSegment}: the checkpoint is segments behind`);
    for (const m of members) if (m !== old) await m.c.pollQueryUntil(`SELECT pg_last_wal_receive_lsn() >= '${end}'::pg_lsn`, 't', { timeoutMs: 60_000 });
    // archived (a .done mark) like every completed segment here: rejoin must keep it all the same
    await waitFor(() => fs.existsSync(path.join(old.c.dataDir, 'pg_wal', 'archive_status', `${ckptSegment}.done`)) || undefined, {
      timeoutMs: 30_000,
      what: `${ckptSegment} archived`,
    });

    await old.c.kill9();
    const lead = await ops.leader(60_000);
    assert.notEqual(lead, old);
    await lead.c.query(`INSERT INTO probe(member) VALUES ('after the crash')`);
    await lead.c.query('CHECKPOINT');

    // as after a reboot: the stale postmaster.pid names a PID that another user's process has now (review 14c finding G)
    const pidFile = path.join(old.c.dataDir, 'postmaster.pid');
    fs.writeFileSync(pidFile, fs.readFileSync(pidFile, 'utf8').replace(/^\d+/, '1'));
    const said = await ctlRejoin(old);
    t.diagnostic(`${old.c.name}: ${said.out}`);
    assert.equal(said.code, 0, said.out);
    assert.match(said.out, /: rewind: pg_rewind from "\w" done/);
    const status = fs.readdirSync(path.join(old.c.dataDir, 'pg_wal', 'archive_status'));
    assert.ok(!fs.existsSync(path.join(old.c.dataDir, 'pg_wal', 'archive_status.rejoin')), 'the marks set aside are back');
    const ready = new Set(status.filter((f) => f.endsWith('.ready')).map((f) => f.slice(0, -6)));
    assert.deepEqual(status.filter((f) => f.endsWith('.done') && ready.has(f.slice(0, -5))), [], 'no segment both archived and waiting to be archived');

    await old.c.start();
    await ops.streamsFrom(old, lead);
    await old.c.pollQueryUntil(`SELECT count(*) FROM probe WHERE member = 'after the crash'`, '1', { timeoutMs: 30_000 });
  });

  test('a standby whose WAL diverged on the same timeline (a local checkpoint the leader never wrote): replay_stuck, needs rebuild (review 14 finding 13)', async (t) => {
    const lead = await ops.leader();
    const sb = members.find((m) => m !== lead)!;
    await ops.streamsFrom(sb, lead);
    await ops.caughtUp(sb, lead);
    await sb.c.kill9();
    // what rejoin once did to a crashed standby: crash recovery without standby.signal, ending with a
    // checkpoint on the leader's timeline that the leader does not have
    fs.rmSync(path.join(sb.c.dataDir, 'standby.signal'));
    await net().exec(sb.host, ['sh', '-c', `runuser -u postgres -- ${path.join(PG_BIN, 'postgres')} --single -F -D ${sb.c.dataDir} -c archive_mode=off template1 < /dev/null`], { timeoutMs: 120_000 });
    fs.writeFileSync(path.join(sb.c.dataDir, 'standby.signal'), '');
    // the leader's WAL moves past that position with other records
    await lead.c.query(`INSERT INTO probe(member) SELECT 'diverged' FROM generate_series(1, 5000)`);
    const off = sb.c.logOffset();
    await sb.c.start();
    const line = await sb.c.waitForLog(/tsworker "promoter": replay_stuck: .*/, off, 90_000);
    t.diagnostic(line.replace(/.*replay_stuck: /, '').slice(0, 400));
    assert.match(line, new RegExp(`not streaming and no WAL replayed for \\d+ s although member \\\\"${lead.c.name}\\\\" lets this standby in`));
    assert.match(line, /pg_basebackup -R/);
    // the status is published at the end of the loop that logged the event
    await waitFor(async () => (await ops.status(sb.c))?.needs === 'rebuild' || undefined, { timeoutMs: 10_000, what: `${sb.c.name}'s status saying needs: rebuild` });
    assert.equal(await sb.c.queryText('SELECT count(*) FROM pg_stat_wal_receiver WHERE status = \'streaming\''), '0', 'it does not stream');
  });

  test('a standby whose WAL the leader recycled while it was stopped (no slot, wal_keep_size 0): replay_stuck, needs rebuild, /replica 503 (review 14c finding L)', async (t) => {
    const lead = await ops.leader();
    // the standby the previous test did not leave stuck
    const sb = members.filter((m) => m !== lead)[1];
    await ops.streamsFrom(sb, lead);
    await ops.caughtUp(sb, lead);
    await sb.c.stop();
    const needed = await lead.c.queryText('SELECT pg_walfile_name(pg_current_wal_flush_lsn())');
    // the leader moves on 4 segments and checkpoints: nothing keeps the segment the standby would stream next
    for (let i = 0; i < 4; i++) await lead.c.query(`INSERT INTO probe(member) VALUES ('recycled ${i}'); SELECT pg_switch_wal()`);
    await lead.c.query('CHECKPOINT');
    await lead.c.query('CHECKPOINT');
    assert.equal(await lead.c.queryText(`SELECT count(*) FROM pg_ls_waldir() WHERE name = '${needed}'`), '0', `${needed} recycled on the leader`);
    const off = sb.c.logOffset();
    await sb.c.start();
    const line = await sb.c.waitForLog(/tsworker "promoter": replay_stuck: .*/, off, 90_000);
    t.diagnostic(line.replace(/.*replay_stuck: /, '').slice(0, 300));
    assert.match(sb.c.readLog(off), /requested WAL segment \w+ has already been removed/, "PostgreSQL's own reason is in its log");
    assert.match(line, /has already been removed.*recycled WAL this standby needs.*pg_basebackup -R/);
    // the status is published at the end of the loop that logged the event
    await waitFor(async () => (await ops.status(sb.c))?.needs === 'rebuild' || undefined, { timeoutMs: 10_000, what: `${sb.c.name}'s status saying needs: rebuild` });
    const replica = await ops.healthFull('GET', '/replica');
    assert.equal(replica[sb.c.name].code, 503, 'not offered as a replica');
  });
});
