/**
 * [cluster] The leader lease's TTL has one owner: the lease etcd granted.
 * Review 14b found that `ttl`, a per-member setting, was counted by each
 * member from its own value: a leader with a longer `ttl` than its
 * followers (configured so, or after a reload that lowered it everywhere,
 * since a lease keeps the TTL it was granted) stayed writable for seconds
 * after they deleted its key and promoted (4.7 s and 6.7 s with two
 * writable primaries, acknowledged commits lost; finding 6), and raising
 * `ttl` on the leader computed its fence margin from the new value against
 * the old lease, fencing it for good (finding 7). Members now count the
 * TTL etcd granted to the leader's lease, and the leader's fence follows
 * its lease's own TTL.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Writers, type Member } from './cluster-helpers';
import { clusterFixture } from './cluster-fixture';
import { waitFor } from './harness/cluster';
import { logLines } from './helpers';

const root = process.getuid?.() === 0;

describe('cluster mode: members with different ttl settings, and ttl changed by a reload', { skip: root ? false : 'needs root' }, () => {
  // the first leader, a, with a lease three times as long as its followers' setting
  const { net, members, ops } = clusterFixture('tt', (host) => ({ 'tsworker_promoter.ttl': host === 'a' ? '6' : '2' }));

  test('ttl raised by a reload on the leader: it keeps accepting writes under the lease it holds, and says so', async () => {
    const lead = await ops.leader();
    const off = lead.c.logOffset();
    await lead.c.query(`ALTER SYSTEM SET tsworker_promoter.ttl = 10`);
    await lead.c.query('SELECT pg_reload_conf()');
    await waitFor(() => logLines(lead.c, /the new ttl applies to the next lease/, off).length > 0 || undefined, { timeoutMs: 15_000, what: 'the ttl note' });
    // a few loops later, still the writable leader (the margin of the new ttl against the old lease fenced it for good)
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await ops.leader(5000)).c.name, lead.c.name);
    assert.deepEqual(logLines(lead.c, /tsworker "promoter": fenced: /, off), []);
    await lead.c.query(`ALTER SYSTEM RESET tsworker_promoter.ttl`);
    await lead.c.query('SELECT pg_reload_conf()');
  });

  test('a leader whose lease is longer than its followers\' ttl, cut off from etcd: they wait for its lease, never two writable primaries', async (t) => {
    const old = await ops.leader();
    assert.equal(old.c.name, 'a');
    for (const m of members) if (m !== old) await ops.streamsFrom(m, old);
    const writers = new Writers(members, t);
    const offs = new Map(members.map((m) => [m.c.name, m.c.logOffset()]));
    await new Promise((r) => setTimeout(r, 500));
    const cut = Date.now();
    // a loses etcd only: its clients still reach it, so only its fence can stop its writes
    await net().partition([old.host], ['e']);
    let next: Member;
    try {
      next = await waitFor(async () => {
        const m = await ops.leader(30_000);
        return m !== old ? m : undefined;
      }, { timeoutMs: 40_000, what: 'another member leading' });
      await new Promise((r) => setTimeout(r, 1500));
      // a refused write says since when writes stop: when the fence closed, not when it was last renewed,
      // and the same a moment later (review 14b finding 2)
      const since = async () => {
        const err = await old.c.query(`INSERT INTO probe(member) VALUES ('refused')`).then(() => null, (e: { code?: string; detail?: string }) => e);
        assert.equal(err?.code, '25006');
        const at = /It is fenced since (.+?): /.exec(err?.detail ?? '')?.[1];
        assert.ok(at, err?.detail);
        return Date.parse(at.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
      };
      const first = await since();
      // the last write it acknowledged was sent before the fence closed
      const lastSent = Math.max(...writers.acks.filter((a) => a.member === old.c.name).map((a) => a.sent));
      assert.ok(first > cut, `fenced since ${new Date(first).toISOString()}, after the cut at ${new Date(cut).toISOString()}`);
      assert.ok(first >= lastSent, `fenced since ${new Date(first).toISOString()}, not before its last acknowledged write was sent at ${new Date(lastSent).toISOString()}`);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await since(), first, 'the time does not move');
    } finally {
      await writers.stop();
      await net().heal();
    }
    const overlap = writers.overlapMs(cut - 500);
    const expired = members.flatMap((m) => logLines(m.c, /tsworker "promoter": leader_expired: /, offs.get(m.c.name)));
    t.diagnostic(`${next.c.name} leads ${Date.now() - cut} ms after the cut; overlap ${overlap} ms; ${expired.join(' | ')}`);
    assert.equal(overlap, 0, 'no moment with two members accepting writes');
    assert.equal(logLines(old.c, /tsworker "promoter": fenced: /, offs.get(old.c.name)).length >= 1, true, 'the cut-off leader fenced');
    // a follower that deleted the key counted the lease's 6 s, not its own 2 s
    for (const line of expired) assert.match(line, /"leaseTtlMs":6000/);
  });
});
