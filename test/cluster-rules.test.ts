/**
 * [cluster] The rules of cluster mode that are pure functions: the
 * election, Patroni's timing rule, whether WAL fits the leader's timeline,
 * synchronous_standby_names, the health endpoints' answers. The behaviour
 * on real servers is in cluster.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';

import { HealthApi, parseBytes, type ApiState } from '../src/workers/cluster/api';
import { autoPrimaryConninfo } from '../src/workers/cluster/auto-conf';
import { decide } from '../src/workers/cluster/boot';
import { Dcs, DcsError } from '../src/workers/cluster/dcs';
import { dutyOf } from '../src/workers/cluster/duty';
import { LeaderExpiry } from '../src/workers/cluster/expiry';
import { elect, type Candidate, type ElectionInput } from '../src/workers/cluster/election';
import { fitsTimeline, followConninfo } from '../src/workers/cluster/follow';
import { lsnToNumber, numberToLsn } from '../src/workers/cluster/local';
import { dataDirProblem, parseCommand } from '../src/workers/cluster/cli';
import { clusterPrefix, configErrors, timing } from '../src/workers/cluster/settings';
import { parseStandbyNames, standbyNames } from '../src/workers/cluster/sync';
import { Etcd } from './harness/etcd';

const member = (name: string, lsn: number, more: Partial<Candidate> = {}): Candidate => ({
  name,
  lsn,
  timeline: 1,
  priority: 1,
  nofailover: false,
  sysid: '7',
  recovery: true,
  writable: false,
  source: 'direct',
  ...more,
});

const input = (me: Candidate, peers: Candidate[], more: Partial<ElectionInput> = {}): ElectionInput => ({
  me: { ...me, source: 'self' },
  peers,
  initialize: '7',
  clusterTimeline: 1,
  leaderOptime: 1000,
  maxLagBytes: 1024 * 1024,
  sync: null,
  ...more,
});

describe('election', () => {
  test('the most advanced takes the key; ties go to priority, then to the smaller name', () => {
    assert.equal(elect(input(member('b', 900), [member('c', 800)])).take, true);
    assert.equal(elect(input(member('c', 800), [member('b', 900)])).take, false);
    assert.equal(elect(input(member('c', 900, { priority: 2 }), [member('b', 900)])).take, true);
    assert.equal(elect(input(member('b', 900), [member('c', 900)])).take, true);
    assert.match((elect(input(member('c', 900), [member('b', 900)])) as { why: string }).why, /member "b" ranks before this one/);
  });

  test('not eligible: nofailover, priority 0, another cluster, an old timeline, too much lag', () => {
    assert.match((elect(input(member('b', 900, { nofailover: true }), [])) as { why: string }).why, /nofailover/);
    assert.equal(elect(input(member('b', 900, { priority: 0 }), [])).take, false);
    assert.match((elect(input(member('b', 900, { sysid: '8' }), [])) as { why: string }).why, /not the cluster's/);
    assert.match((elect(input(member('b', 900), [], { clusterTimeline: 2 })) as { why: string }).why, /timeline 1 is behind/);
    assert.match((elect(input(member('b', 0), [], { leaderOptime: 2 * 1024 * 1024 })) as { why: string }).why, /maximum_lag_on_failover/);
  });

  test('a peer that is ineligible, or a fenced primary behind this member, does not stop the most advanced eligible member', () => {
    assert.equal(elect(input(member('b', 900), [member('a', 5000, { nofailover: true }), member('c', 800, { recovery: false })])).take, true);
    assert.equal(elect(input(member('b', 900), [member('c', 5000, { recovery: false, timeline: 0 })], { clusterTimeline: 1 })).take, true, 'a primary on an old timeline');
    assert.equal(elect(input(member('b', 900), [member('c', 5000, { recovery: false, source: 'etcd' })])).take, true, 'a primary that did not answer');
  });

  test('a fenced primary back in etcd with at least as much WAL takes the key back: a standby yields (review 14 finding 1)', () => {
    assert.match((elect(input(member('b', 900), [member('c', 900, { recovery: false })])) as { why: string }).why, /member "c" is a primary \(fenced\)/);
    assert.equal(elect(input(member('b', 900), [member('c', 5000, { recovery: false })])).take, false);
    // the primary itself, compared with the standbys, takes it
    assert.equal(elect(input(member('c', 5000, { recovery: false }), [member('b', 900)])).take, true);
    // at equal WAL the standby yields to the primary, so the primary does not yield to the standby's smaller
    // name (review 14b finding 12: each yielded to the other, and nobody took the key)
    assert.equal(elect(input(member('b', 900), [member('c', 900, { recovery: false })])).take, false);
    assert.equal(elect(input(member('c', 900, { recovery: false }), [member('b', 900)])).take, true);
    assert.equal(elect(input(member('c', 900, { recovery: false }), [member('b', 901)])).take, false);
    assert.match((elect(input(member('b', 900), [member('a', 5000, { recovery: false, writable: true })])) as { why: string }).why, /is a primary that accepts writes/);
  });

  test('synchronous mode: only a member of the set, after comparing with n - k + 1 of it', () => {
    const sync = { leader: 'a', members: ['b', 'c'], quorum: 1 };
    assert.match((elect(input(member('d', 900), [], { sync })) as { why: string }).why, /not in the synchronous set/);
    assert.match((elect(input(member('b', 900), [member('c', 800, { source: 'etcd' })], { sync })) as { why: string }).why, /compared with 1 of 2/);
    assert.equal(elect(input(member('b', 900), [member('c', 800)], { sync })).take, true);
    assert.equal(elect(input(member('b', 900), [member('c', 800, { source: 'etcd' })], { sync: { ...sync, quorum: 2 } })).take, true);
    assert.match((elect(input(member('b', 900), [], { sync: { ...sync, members: [] } })) as { why: string }).why, /no member is a synchronous standby/);
    // the former leader, still a primary, takes the key back even with an empty set
    assert.equal(elect(input(member('a', 900, { recovery: false }), [], { sync: { ...sync, members: [] } })).take, true);
    // restarted (so in recovery) with an empty set: it takes the key back too, unless a member holds more WAL
    assert.equal(elect(input(member('a', 900), [member('b', 800)], { sync: { ...sync, members: [] } })).take, true);
    assert.match((elect(input(member('a', 900), [member('b', 950)], { sync: { ...sync, members: [] } })) as { why: string }).why, /member "b" holds more WAL/);
    // nobody else may while the set is empty
    assert.equal(elect(input(member('b', 950), [member('a', 900)], { sync: { ...sync, members: [] } })).take, false);
  });
});

describe('duty: initializing a scope, leading only under a lease of its own', () => {
  const me = { name: 'a', recovery: true, sysid: '7' };
  test('only a server out of recovery initializes a scope; a standby waits, naming the scope setting', () => {
    assert.deepEqual(dutyOf({ initialize: null, leader: null }, { ...me, recovery: false }, 'L1', 'orders'), { kind: 'initialize' });
    const d = dutyOf({ initialize: null, leader: null }, me, 'L1', 'orderz');
    assert.equal(d.kind, 'wait');
    assert.match((d as { why: string }).why, /cluster "orderz" is not initialized.*tsworker_promoter\.scope/);
  });

  test('the leader key with this name counts only under this process\'s lease', () => {
    const view = { initialize: '7', leader: { name: 'a', lease: 'L1' } };
    assert.deepEqual(dutyOf(view, me, 'L1', 's'), { kind: 'lead' });
    for (const lease of ['L2', null]) {
      const d = dutyOf(view, { ...me, recovery: false }, lease, 's');
      assert.equal(d.kind, 'wait');
      assert.match((d as { why: string }).why, /lease L1, which this process did not create.*tsworker_promoter\.name/);
    }
    assert.deepEqual(dutyOf({ ...view, leader: { name: 'b', lease: 'L1' } }, me, 'L1', 's'), { kind: 'follow', leader: 'b' });
    assert.deepEqual(dutyOf({ ...view, leader: null }, me, 'L1', 's'), { kind: 'elect' });
    assert.equal(dutyOf({ ...view, initialize: '8' }, me, 'L1', 's').kind, 'foreign');
  });
});

describe('configuration errors name the setting', () => {
  test('a malformed or empty tsworker_promoter.etcd_hosts', async () => {
    const dcs = new Dcs([], '/service/s/', 500); // etcd3 throws on no hosts: the member must live on to say why
    await assert.rejects(dcs.read(), (err: Error) => err instanceof DcsError && /tsworker_promoter\.etcd_hosts/.test(err.message));
    dcs.close();
    const base = ['--scope', 's', '--name', 'a', '--sysid', '7', '--recovery', 'on'];
    for (const hosts of ['127.0.0.1:23799', '', ' , ']) {
      const [kind, why] = await decide([...base, '--hosts', hosts]);
      assert.equal(kind, 'error', hosts);
      assert.match(why, /tsworker_promoter\.etcd_hosts/);
    }
  });

  test('tsworker_promoter.restapi_listen that is not address:port', async () => {
    const api = new HealthApi(() => null, () => false, '0.1.0');
    for (const bad of ['nonsense', '127.0.0.1:99999', '127.0.0.1:']) {
      await assert.rejects(api.listen(bad), /tsworker_promoter\.restapi_listen/, bad);
    }
    api.close();
  });
});

describe('at server start (boot.js) against a real etcd', () => {
  let etcd: Etcd;
  test.before(async () => {
    etcd = await Etcd.start('rules');
  });
  test.after(async () => {
    await etcd?.cleanup();
  });

  test('a standby with an uninitialized scope stays a standby and initializes nothing', async () => {
    const [kind, why] = await decide(['--hosts', etcd.url, '--scope', 'orderz', '--name', 'b', '--sysid', '7', '--recovery', 'on']);
    assert.equal(kind, 'standby');
    assert.match(why, /not initialized.*tsworker_promoter\.scope/);
    const dcs = new Dcs([etcd.url], '/service/orderz/', 2000);
    assert.equal((await dcs.read()).initialize, null);
    dcs.close();
  });

  test('a standby named as the leader key\'s holder stays a standby; a second process cannot publish under a live member\'s name', async () => {
    const dcs = new Dcs([etcd.url], '/service/orders/', 2000);
    try {
      assert.equal(await dcs.initialize('7'), true);
      const lease = await dcs.grantLease(10);
      assert.equal(await dcs.acquireLeader('a', lease.id), true);
      const data = { conninfo: 'host=x', role: 'primary', state: 'running', timeline: 1, lsn: 1, replayed: null, streaming_from: null, priority: 1, nofailover: false, nosync: false, sysid: '7', api_url: null, at: '' };
      assert.equal(await dcs.touchMember('a', data as never, lease.id), true);
      const [kind, why] = await decide(['--hosts', etcd.url, '--scope', 'orders', '--name', 'a', '--sysid', '7', '--recovery', 'on']);
      assert.equal(kind, 'standby');
      assert.match(why, /under a lease this server did not create.*tsworker_promoter\.name.*stays a standby/);
      // the copy's own lease cannot replace the live member's key; the owner's renewals go on
      const other = await dcs.grantLease(10);
      assert.equal(await dcs.touchMember('a', data as never, other.id), false);
      assert.equal(await dcs.touchMember('a', data as never, lease.id), true);
      assert.equal((await dcs.read()).members.get('a')?.lease, lease.id);

      // another member starting as a standby streams from the leader at once: boot sets primary_conninfo
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boot-'));
      try {
        fs.writeFileSync(path.join(dir, 'postgresql.auto.conf'), "# Do not edit this file manually!\nprimary_conninfo = 'host=gone port=5432'\nwork_mem = '8MB'\n");
        const [k2, why2, conninfo] = await decide(['--hosts', etcd.url, '--scope', 'orders', '--name', 'b', '--sysid', '7', '--recovery', 'on', '--datadir', dir]);
        assert.equal(k2, 'standby');
        assert.match(why2, /member "a" leads; primary_conninfo set/);
        assert.equal(conninfo, followConninfo('host=x', 'b'));
        assert.equal(autoPrimaryConninfo(dir), conninfo);
        assert.match(fs.readFileSync(path.join(dir, 'postgresql.auto.conf'), 'utf8'), /work_mem = '8MB'/);
        const again = await decide(['--hosts', etcd.url, '--scope', 'orders', '--name', 'b', '--sysid', '7', '--recovery', 'on', '--datadir', dir]);
        assert.deepEqual(again, ['standby', 'member "a" leads'], 'nothing to change the second time');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      dcs.close();
    }
  });

  test('one refused and one silent etcd endpoint of three cost nothing: every request answers within retry_timeout', async () => {
    // silent: accepts TCP and never answers (a frozen etcd, or a blackholed address as far as a deadline goes)
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const refused = net.createServer();
    await new Promise<void>((r) => refused.listen(0, '127.0.0.1', r));
    const refusedPort = (refused.address() as net.AddressInfo).port;
    await new Promise((r) => refused.close(r));
    const hosts = [`http://127.0.0.1:${refusedPort}`, etcd.url, `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`];
    // etcd answers (a first call to an etcd that has just started takes a few hundred ms)
    const warm = new Dcs([etcd.url], '/service/dead/', 5000);
    await warm.read();
    warm.close();
    const dcs = new Dcs(hosts, '/service/dead/', 750);
    const failures: string[] = [];
    let worst = 0;
    try {
      const lease = await dcs.grantLease(5);
      const data = { conninfo: 'host=x', role: 'replica', state: 'running', timeline: 1, lsn: 1, replayed: null, streaming_from: null, priority: 1, nofailover: false, nosync: false, sysid: '7', api_url: null, at: '' };
      // what a member does each loop, for about 6 s (the dead endpoints are tried again every 2 s)
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        try {
          await dcs.keepAlive(lease.id);
          await dcs.read();
          assert.equal(await dcs.touchMember('m', data as never, lease.id), true);
        } catch (err) {
          failures.push((err as Error).message);
        }
        worst = Math.max(worst, performance.now() - t0);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      dcs.close();
      for (const sock of sockets) sock.destroy();
      silent.close();
    }
    assert.deepEqual(failures, [], `every request answered (slowest loop ${Math.round(worst)} ms)`);
  });
});

describe('settings and helpers', () => {
  test('the leader lease as the other members see it: its own TTL from the last change of (lease, status), restarted after a gap in contact', () => {
    const e = new LeaderExpiry(() => 1250);
    e.contact(0);
    e.observe('L', '10', 0);
    // the TTL etcd granted to the lease is asked first: until then nothing is due
    assert.equal(e.leaseToAsk(), 'L');
    assert.equal(e.due(60_000), null);
    assert.equal(e.dueInMs(0), null);
    e.leaseTtl('L', 2000);
    assert.equal(e.leaseToAsk(), null);
    assert.equal(e.due(1999), null);
    assert.deepEqual(e.due(2000), { lease: 'L', statusRev: '10', silentMs: 2000, ttlMs: 2000 });
    e.statusWritten('11', 1500); // the leader wrote status: a new window
    assert.equal(e.due(3000), null);
    assert.equal(e.due(3500)?.statusRev, '11');
    e.observe('L', '10', 3600); // a read older than the watch event changes nothing
    assert.equal(e.due(3500)?.statusRev, '11');
    e.contact(500);
    e.contact(2500); // no answer from etcd for 2 s: the count starts again
    assert.equal(e.due(3500), null);
    assert.equal(e.due(4500)?.silentMs, 2000);
    e.observe('M', '11', 5000); // another lease holds the key: its own TTL counts (a leader with a longer ttl)
    assert.equal(e.leaseToAsk(), 'M');
    assert.equal(e.due(9000), null, 'the TTL of lease L is not that of M');
    e.leaseTtl('M', 6000);
    assert.equal(e.due(10_999), null);
    assert.equal(e.due(11_000)?.lease, 'M');
    e.observe(null, null);
    assert.equal(e.due(10_000), null);
  });

  test('loop_wait + 2 x retry_timeout <= ttl is enforced as Patroni does', () => {
    assert.deepEqual(timing({ ttl: 2, loop_wait: 500, retry_timeout: 750 }), { ttlMs: 2000, loopWaitMs: 500, retryTimeoutMs: 750, fenceMarginMs: 500, adjusted: null });
    const t = timing({ ttl: 2, loop_wait: 1000, retry_timeout: 750 });
    assert.equal(t.loopWaitMs, 500);
    assert.match(t.adjusted ?? '', /violated/);
    const u = timing({ ttl: 1, loop_wait: 500, retry_timeout: 750 });
    assert.deepEqual([u.loopWaitMs, u.retryTimeoutMs], [100, 450]);
    assert.equal(clusterPrefix('/service/', 'orders'), '/service/orders/');
    assert.equal(clusterPrefix('service', 'orders'), '/service/orders/');
    assert.deepEqual(
      configErrors({ etcd_hosts: 'etcd:2379', scope: '', namespace: '/service/', name: 'a b', conninfo: '', ttl: 2, loop_wait: 500, retry_timeout: 750, maximum_lag_on_failover: 1024, priority: 1, nofailover: false, nosync: false, synchronous_mode: false, synchronous_mode_strict: false, synchronous_node_count: 1, restapi_listen: '8008' }).length,
      5,
    );
  });

  test('WAL positions, following and the fork point', () => {
    assert.equal(lsnToNumber('1/0'), 2 ** 32);
    assert.equal(numberToLsn(lsnToNumber('16/B374D848') as number), '16/B374D848');
    assert.equal(followConninfo("host=10.0.0.1 port=5432 user=rep password='a b'", 'pg2'), "host=10.0.0.1 port=5432 user=rep password='a b' application_name=pg2");
    const history: [number, number, string, string, string][] = [[1, 5000, 'no recovery target specified', '', 'b']];
    assert.equal(fitsTimeline(1, 4000, 2, history).verdict, 'follow');
    assert.equal(fitsTimeline(1, 5000, 2, history).verdict, 'follow');
    assert.equal(fitsTimeline(1, 5001, 2, history).verdict, 'rewind');
    assert.equal(fitsTimeline(2, 9000, 2, history).verdict, 'follow');
    assert.equal(fitsTimeline(3, 9000, 2, history).verdict, 'rewind');
  });

  test('synchronous_standby_names round-trips', () => {
    assert.equal(standbyNames(1, ['c', 'b']), 'ANY 1 ("b", "c")');
    assert.deepEqual(parseStandbyNames('ANY 1 ("b", "c")'), { k: 1, names: ['b', 'c'] });
    assert.deepEqual(parseStandbyNames(''), { k: 0, names: [] });
    assert.equal(parseStandbyNames('FIRST 1 (b)'), null);
  });

  test('health endpoints answer as Patroni does', () => {
    const st: ApiState = {
      scope: 's', name: 'b', role: 'replica', leader: false, timeline: 1, lsn: 1000, received: 1000, replayed: 900,
      replicationState: 'streaming', needs: null, leaderOptime: 2000, syncMembers: ['b'], maximumLagOnFailover: 1 << 20,
      tags: { nofailover: false, nosync: false }, serverVersion: 150000, postmasterStartTime: null, sysid: '7',
      dcsLastSeen: null, lastLoopAt: 0, ttlMs: 2000, pause: false, cluster: { scope: 's', members: [] }, history: [],
    };
    const api = new HealthApi(() => st, () => false, '0.1.0');
    assert.equal(api.answer('OPTIONS', '/primary', 10).code, 503);
    assert.equal(api.answer('GET', '/replica', 10).code, 200);
    assert.equal(api.answer('GET', '/replica?lag=100', 10).code, 503);
    assert.equal(api.answer('GET', '/replica?lag=2kB', 10).code, 200);
    // a standby that must be rebuilt (its replay is stuck) is no replica to read from (review 14c findings K, L)
    assert.equal(new HealthApi(() => ({ ...st, needs: 'rebuild' }), () => false, '0.1.0').answer('GET', '/replica', 10).code, 503);
    assert.equal(api.answer('GET', '/sync', 10).code, 200);
    assert.equal(api.answer('GET', '/async', 10).code, 503);
    assert.equal(api.answer('GET', '/liveness', 10).code, 200);
    assert.equal(api.answer('GET', '/liveness', 5000).code, 503);
    assert.equal(api.answer('GET', '/nonsense', 10).code, 503);
    assert.equal(parseBytes('16MB'), 16 * 1024 * 1024);
    const leader = new HealthApi(() => ({ ...st, role: 'primary', leader: true }), () => true, '0.1.0');
    assert.equal(leader.answer('OPTIONS', '/primary', 10).code, 200);
    assert.equal(leader.answer('GET', '/', 10).code, 200);
    assert.equal((leader.answer('GET', '/primary', 10).body as { patroni: { scope: string } }).patroni.scope, 's');
    const fenced = new HealthApi(() => ({ ...st, role: 'primary', leader: true }), () => false, '0.1.0');
    assert.equal(fenced.answer('OPTIONS', '/primary', 10).code, 503);
    assert.equal((fenced.answer('GET', '/health', 10).body as { state: string }).state, 'fenced');
    // maintenance mode shows on every endpoint's body, as Patroni's "pause": true
    const paused = new HealthApi(() => ({ ...st, pause: true }), () => false, '0.1.0');
    assert.equal((paused.answer('GET', '/health', 10).body as { pause?: boolean }).pause, true);
    assert.equal((api.answer('GET', '/health', 10).body as { pause?: boolean }).pause, undefined);
  });
});

describe('pg_tsworker_ctl arguments', () => {
  test('every argument is checked before anything is done: a bad one is a usage error (review 14 finding 7)', () => {
    const refused: Array<[string[], RegExp]> = [
      [['switchover', '-D', '/d', '--timeout', 'abc'], /--timeout must be a number of seconds from 1 to 3600, not "abc"/],
      [['switchover', '-D', '/d', '--timeout', '0'], /--timeout must be/],
      [['switchover', '-D', '/d', '--timeout', '-5'], /--timeout|ambiguous|Option/],
      [['switchover', '-D', '/d', '--timeout', '3601'], /--timeout must be/],
      [['switchover', '-D', '/d', '--candidate'], /--candidate/],
      [['switchover', '-D', '/d', '--candidate', ''], /--candidate must name a member/],
      [['switchover', '-D', '/d', '--bogus'], /Unknown option '--bogus'/],
      // review 14b finding 4: a repeated option is refused, not "the last one wins"
      [['rejoin', '-D', '/d', '-D', '/e'], /--pgdata \(-D\) given more than once/],
      [['switchover', '-D', '/d', '--timeout=10', '--timeout', '20'], /--timeout given more than once/],
      [['rejoin', '-D', '/d', '--force'], /rejoin does not take --force/],
      [['failover', '-D', '/d'], /failover needs --candidate NAME/],
      [['promote', '-D', '/d'], /unknown operation "promote"/],
      [['switchover', 'failover', '-D', '/d'], /one operation expected/],
      [['-D', '/d'], /no operation given/],
      [['pause'], /no data directory/],
      [['switchover', '-D', '/d', '--leader', ''], /--leader must name a member/],
      [['failover', '-D', '/d', '--candidate', 'pg3', '--leader', 'pg1'], /failover does not take --leader/],
    ];
    for (const [argv, re] of refused) assert.throws(() => parseCommand(argv, {}), re, argv.join(' '));
    assert.deepEqual(parseCommand(['switchover', '-D', '/d', '--candidate', 'pg2', '--timeout', '30'], {}), {
      op: 'switchover', dir: '/d', worker: 'promoter', candidate: 'pg2', leader: null, force: false, timeoutMs: 30_000,
    });
    assert.deepEqual(parseCommand(['failover', '--candidate=pg3', '--force'], { PGDATA: '/e' }), {
      op: 'failover', dir: '/e', worker: 'promoter', candidate: 'pg3', leader: null, force: true, timeoutMs: 60_000,
    });
  });
});

describe('pg_tsworker_ctl data directory checks', () => {
  test('a missing directory, a file, a directory that is not a cluster, root: said as pg_ctl says it (review 14 finding 12)', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctl-dir-'));
    try {
      assert.equal(dataDirProblem(path.join(tmp, 'nonexist'), 1000), `directory "${path.join(tmp, 'nonexist')}" does not exist`);
      fs.writeFileSync(path.join(tmp, 'file'), '');
      assert.match(dataDirProblem(path.join(tmp, 'file'), 1000) ?? '', /is not a directory/);
      assert.match(dataDirProblem(tmp, 1000) ?? '', /is not a database cluster directory/);
      assert.match(dataDirProblem(tmp, 0) ?? '', /cannot be run as root; run it as the server's OS user/);
      fs.writeFileSync(path.join(tmp, 'PG_VERSION'), '15\n');
      assert.equal(dataDirProblem(tmp, 1000), null);
      // a configuration directory (Debian's /etc/postgresql/15/main) is fine too
      fs.rmSync(path.join(tmp, 'PG_VERSION'));
      fs.writeFileSync(path.join(tmp, 'postgresql.conf'), '');
      assert.equal(dataDirProblem(tmp, 1000), null);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
