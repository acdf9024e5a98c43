/**
 * [switchover] Maintenance mode and a leader cut off from etcd (review 14b
 * findings 9 and 10): paused, a leader that cannot reach etcd keeps
 * accepting writes while its lease, and its leader and member keys with
 * it, expire. `tsworker.resume()` then let the others elect a second
 * primary, and `tsworker.failover()` promoted one, because both only asked
 * the members whose keys were in etcd (9.5 s and 5.3 s with two writable
 * primaries, acknowledged commits lost). Both now ask the last leader (the
 * member that wrote `status`) directly, and refuse while it answers as a
 * writable primary.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { clusterFixture, sqlError } from './cluster-fixture';
import { waitFor } from './harness/cluster';

const root = process.getuid?.() === 0;

describe('maintenance mode with the leader cut off from etcd: resume and failover refuse while it accepts writes', { skip: root ? false : 'needs root' }, () => {
  const { net, members, ops, etcdValue, operations } = clusterFixture('pc');

  test('paused, the leader loses etcd and its key: resume() and failover() refuse with the reason; its etcd back, it leads and resume() works', async (t) => {
    const lead = await ops.leader();
    const other = members.find((m) => m !== lead)!;
    const target = members.find((m) => m !== lead && m !== other)!;
    // its promoter has written status with its name and conninfo
    await waitFor(async () => (await ops.status(other.c))?.leader === lead.c.name || undefined, { timeoutMs: 30_000, what: 'the leader seen' });
    assert.equal(await other.c.queryText('SELECT tsworker.pause()'), 't');
    await waitFor(async () => (await ops.status(lead.c))?.paused === true || undefined, { timeoutMs: 15_000, what: 'the leader paused' });
    await net().partition([lead.host], ['e']);
    try {
      // its lease runs out: no leader key, and the leader still accepts writes (maintenance mode)
      await waitFor(async () => ((await ops.status(other.c))?.leader ?? null) === null || undefined, { timeoutMs: 30_000, what: 'the leader key gone' });
      await lead.c.query(`INSERT INTO probe(member) VALUES ('cut off, paused')`);
      // a member started meanwhile says why nobody will be elected (review 14c H4)
      const off = target.c.logOffset();
      await target.c.restart();
      assert.match(
        await target.c.waitForLog(/starts as a standby.*/, off, 20_000),
        new RegExp(`no member leads, and the cluster is paused \\(maintenance mode, since \\S+ by member "${other.c.name}"\\): no member is elected until tsworker.resume\\(\\)`),
      );

      let e = await sqlError(other.c, 'SELECT tsworker.resume()');
      t.diagnostic(`resume: ${e.code} ${e.message} / ${e.hint ?? ''}`);
      assert.equal(e.code, '55000');
      assert.match(e.message, new RegExp(`member "${lead.c.name}" accepts writes but holds no leader key .*: resuming would elect a second primary`));
      e = await sqlError(other.c, 'SELECT tsworker.failover($1)', [target.c.name]);
      t.diagnostic(`failover: ${e.code} ${e.message} / ${e.detail ?? ''}`);
      assert.equal(e.code, '55000');
      assert.match(e.message, new RegExp(`member "${lead.c.name}" is a primary that accepts writes: failing over would make two`));
      assert.match(e.detail ?? '', /holds no leader key/);
      assert.equal((await ops.leader()).c.name, lead.c.name, 'still the one writable member');
      assert.equal((await ops.status(other.c))?.paused, true, 'still paused');
    } finally {
      await net().heal();
    }
    // back in etcd, the paused leader takes its key back; then resume() is allowed
    await waitFor(async () => (await ops.status(other.c))?.leader === lead.c.name || undefined, { timeoutMs: 30_000, what: 'the leader key back' });
    assert.equal(await other.c.queryText('SELECT tsworker.resume()'), 't');
    assert.equal((await ops.leader()).c.name, lead.c.name);
    // each call, refused or done, is a line of etcd's operations (issue 14: "to the etcd history")
    const lines = await operations();
    t.diagnostic(`operations: ${JSON.stringify(lines)}`);
    assert.deepEqual(
      lines.map((l) => [l.op, l.member, l.candidate ?? null, l.outcome, l.code ?? null]),
      [
        ['pause', other.c.name, null, 'done', null],
        ['resume', other.c.name, null, 'refused', '55000'],
        ['failover', other.c.name, target.c.name, 'refused', '55000'],
        ['resume', other.c.name, null, 'done', null],
      ],
    );
    assert.match(lines[1].detail ?? '', /resuming would elect a second primary/);
    assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.at))));
  });

  test('pause() and resume() called at once on every member: each call is a line of operations; a second pause keeps when and by whom the maintenance began (review 14d findings 3 and 6)', async (t) => {
    const before = (await operations()).length;
    const calls = members.flatMap((m) => ['pause', 'resume', 'pause', 'resume'].map((f) => m.c.queryText(`SELECT tsworker.${f}()`)));
    await Promise.all(calls);
    const lines = (await operations()).slice(before);
    t.diagnostic(`${calls.length} calls: ${lines.map((l) => `${l.member}:${l.op}:${l.outcome}`).join(' ')}`);
    assert.equal(lines.length, calls.length, 'no line lost');
    assert.ok(lines.every((l) => (l.op === 'pause' || l.op === 'resume') && (l.outcome === 'done' || l.outcome === 'unchanged')));
    // the pause state of etcd after them, then a pause that began once and a second one
    const config = async () => (await etcdValue<{ pause: boolean; paused_at?: string; paused_by?: string }>('config'))!;
    if ((await config()).pause) await members[0].c.query('SELECT tsworker.resume()');
    assert.equal(await members[1].c.queryText('SELECT tsworker.pause()'), 't');
    const began = await config();
    assert.equal(began.paused_by, members[1].c.name);
    assert.equal(await members[2].c.queryText('SELECT tsworker.pause()'), 'f');
    assert.deepEqual(await config(), began, 'unchanged by the second pause');
    assert.equal((await operations()).pop()?.outcome, 'unchanged');
    assert.equal(await members[0].c.queryText('SELECT tsworker.resume()'), 't');
  });
});
