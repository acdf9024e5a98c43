/**
 * Self-test of the network-namespace harness (test/harness/netns.ts) with
 * real servers: a primary in host "a", a standby of it (pg_basebackup -R over
 * the test network) in host "b", and a plain "witness" server in host "c".
 * Shows streaming replication across the veths, TCP between the hosts, and
 * both partitions the promoter tests need:
 *
 *   (a) b | a,c  — the standby cut off from primary and witness (mode 'drop')
 *   (b) a | b,c  — the primary cut off; standby and witness still connected
 *                  (mode 'reject')
 *
 * Needs root (ip netns add); skipped otherwise.
 */

import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Cluster, PG_OS_USER } from './harness/cluster';
import { Network } from './harness/netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Short timeouts so that a partition is noticed within seconds. */
const WAL_TIMEOUTS = {
  wal_receiver_timeout: '2s',
  wal_sender_timeout: '2s',
  wal_receiver_status_interval: '1s',
  wal_retrieve_retry_interval: '500ms',
};

const STREAMING = "select count(*) from pg_stat_wal_receiver where status = 'streaming'";

describe('test harness: network namespaces and partitions', { skip: !isRoot && 'needs root' }, () => {
  let net: Network;
  let primary: Cluster;
  let standby: Cluster;
  let witness: Cluster;
  const clusters: Cluster[] = [];

  /** Run `psql -c sql` as the server OS user inside `from`'s namespace against `to`; exit code and output. */
  async function psqlFrom(from: string, to: Cluster, sql: string) {
    const conninfo = `${to.tcpConnectionString()} connect_timeout=2`;
    const t0 = Date.now();
    const res = await net.exec(from, ['psql', '-X', '-A', '-t', '-d', conninfo, '-c', sql], {
      user: PG_OS_USER,
      env: { PATH: process.env.PATH, LC_ALL: 'C' },
      cwd: '/',
      check: false,
      timeoutMs: 15_000,
    });
    return { ...res, out: res.stdout.trim(), ms: Date.now() - t0 };
  }

  /** Assert that a psql connection from `from` to `to` works and lands on `to`'s address. */
  async function assertReaches(from: string, to: Cluster) {
    const r = await psqlFrom(from, to, 'select host(inet_server_addr())');
    assert.equal(r.code, 0, `psql ${from} -> ${to.name} should work: ${r.stderr}`);
    assert.equal(r.out, to.netns!.ip);
  }

  /** Assert that a psql connection from `from` to `to` fails; returns the failure. */
  async function assertCutOff(from: string, to: Cluster) {
    const r = await psqlFrom(from, to, 'select 1');
    assert.notEqual(r.code, 0, `psql ${from} -> ${to.name} should fail, got ${JSON.stringify(r.out)}`);
    return r;
  }

  /** Insert a row on the primary and wait until the standby has it. */
  async function replicateRow(v: number) {
    await primary.query('insert into t values ($1)', [v]);
    await standby.pollQueryUntil(`select count(*) from t where a = ${v}`, '1', { timeoutMs: 20_000 });
  }

  before(async () => {
    net = await Network.create(['a', 'b', 'c']);
    primary = await Cluster.create('ns_primary', { allowStreaming: true, netns: net.host('a'), conf: WAL_TIMEOUTS });
    clusters.push(primary);
    standby = await Cluster.createStandby(primary, 'ns_standby', { netns: net.host('b'), conf: WAL_TIMEOUTS });
    clusters.push(standby);
    witness = await Cluster.create('ns_witness', { netns: net.host('c') });
    clusters.push(witness);
    await primary.query('create table t(a int)');
  });

  after(async () => {
    for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
    if (net) await net.destroy();
    if (net) assert.deepEqual(
      fs.readdirSync('/run/netns').filter((n) => n.startsWith(net.prefix)),
      [],
      'namespaces removed',
    );
  });

  it('runs each postmaster inside its namespace, reachable over its Unix socket', async () => {
    for (const [c, h] of [
      [primary, 'a'],
      [standby, 'b'],
      [witness, 'c'],
    ] as const) {
      const pid = c.postmasterPid()!;
      assert.equal(
        fs.statSync(`/proc/${pid}/ns/net`).ino,
        fs.statSync(`/run/netns/${net.netns(h)}`).ino,
        `${c.name}'s postmaster is in namespace ${net.netns(h)}`,
      );
      // The test process (root namespace) talks to it over the Unix socket.
      assert.equal(await c.queryOne('show listen_addresses'), `${net.ip(h)},127.0.0.1`);
    }
    assert.equal(await standby.queryOne('select pg_is_in_recovery()'), true);
    assert.equal(await primary.queryOne('select pg_is_in_recovery()'), false);
  });

  it('streams WAL from a to b over the test network', async () => {
    await primary.pollQueryUntil(
      `select count(*) from pg_stat_replication where state = 'streaming' and host(client_addr) = '${net.ip('b')}'`,
      '1',
      { timeoutMs: 20_000 },
    );
    await standby.pollQueryUntil(STREAMING, '1', { timeoutMs: 20_000 });
    assert.equal(await standby.queryOne('select sender_host from pg_stat_wal_receiver'), net.ip('a'));
    assert.match(String(await standby.queryOne('show primary_conninfo')), new RegExp(`host=${net.ip('a')}\\b`));
    await replicateRow(1);
  });

  it('connects over TCP between all hosts', async () => {
    await Promise.all([
      assertReaches('b', primary),
      assertReaches('b', witness),
      assertReaches('c', primary),
      assertReaches('a', witness),
      assertReaches('c', standby),
    ]);
    assert.equal((await net.probe('b', 'a', primary.port)).outcome, 'connected');
    assert.equal((await net.probe('b', 'a', 1)).outcome, 'refused');
  });

  it('partition b | a,c (drop): standby cut off, a and c still connected; heal restores streaming', async () => {
    const offset = standby.logOffset();
    await net.partition(['b'], ['a', 'c']);
    assert.deepEqual(net.blocked().sort(), ['a->b (drop)', 'b->a (drop)', 'b->c (drop)', 'c->b (drop)']);
    const [toA, toC, aToB] = await Promise.all([
      assertCutOff('b', primary),
      assertCutOff('b', witness),
      net.probe('a', 'b', standby.port, 1000),
      assertReaches('c', primary),
      assertReaches('a', witness),
    ]);
    // Dropped packets: the attempts hang until connect_timeout.
    assert.match(toA.stderr, /timeout expired/);
    assert.match(toC.stderr, /timeout expired/);
    assert.ok(toA.ms >= 1900, `drop waits for the timeout (${toA.ms} ms)`);
    assert.equal(aToB.outcome, 'timeout');
    // The WAL receiver notices after wal_receiver_timeout and stops streaming.
    await standby.pollQueryUntil(STREAMING, '0', { timeoutMs: 15_000 });
    await standby.waitForLog(/terminating walreceiver due to timeout/, offset, 15_000);
    await primary.query('insert into t values (2)');
    assert.equal(await standby.queryOne('select count(*)::int from t where a = 2'), 0);

    await net.heal();
    assert.deepEqual(net.blocked(), []);
    await standby.pollQueryUntil(STREAMING, '1', { timeoutMs: 30_000 });
    await standby.pollQueryUntil('select count(*) from t where a = 2', '1', { timeoutMs: 20_000 });
    await assertReaches('b', primary);
  });

  it('partition a | b,c (reject): primary cut off, b and c still connected; heal restores streaming', async () => {
    await net.partition(['a'], ['b', 'c'], { mode: 'reject' });
    const [bToA, aToC, probe] = await Promise.all([
      assertCutOff('b', primary),
      assertCutOff('a', witness),
      net.probe('b', 'a', primary.port),
      assertReaches('b', witness),
      assertReaches('c', standby),
    ]);
    // Rejected: fails at once, no waiting for the timeout.
    assert.match(bToA.stderr, /No route to host/);
    assert.match(aToC.stderr, /No route to host/);
    assert.equal(probe.outcome, 'unreachable');
    assert.equal(probe.code, 'EHOSTUNREACH');
    assert.ok(probe.ms < 1000, `reject is immediate (${probe.ms} ms)`);
    await standby.pollQueryUntil(STREAMING, '0', { timeoutMs: 15_000 });
    await primary.query('insert into t values (3)');

    await net.heal();
    await standby.pollQueryUntil(STREAMING, '1', { timeoutMs: 30_000 });
    await standby.pollQueryUntil('select count(*) from t where a = 3', '1', { timeoutMs: 20_000 });
    await replicateRow(4);
  });

  it('isolate and partial heal', async () => {
    await net.isolate('c', { mode: 'reject' });
    await net.partition(['a'], ['b']);
    assert.equal(net.blocked().length, 6);
    await net.heal(['c'], ['a', 'b']);
    assert.deepEqual(net.blocked().sort(), ['a->b (drop)', 'b->a (drop)']);
    await assertReaches('c', primary);
    await net.heal();
    await assertReaches('b', primary);
  });
});
