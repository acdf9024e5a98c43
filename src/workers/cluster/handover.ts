/**
 * A planned switchover, as the two members that take part see it
 * (docs/failover.md, "Switchover"). The request comes from an operator
 * through the `failover` key (ctl.ts); the leader's promoter does:
 *
 *   1. check the candidate directly (a streaming standby of this leader, on
 *      its timeline, not nofailover, within maximum_lag_on_failover);
 *   2. CHECKPOINT while writes still go on (so that the shutdown checkpoint
 *      later is short), then see the candidate confirm WAL: its flush
 *      position reaches the leader's, or at least moves, within CONFIRM_MS
 *      (else refuse: a WAL receiver that stopped would hold the fence of
 *      step 3 until CATCH_UP_MS, and writes with it);
 *   3. close the write fence, end the client sessions (a commit in flight
 *      finishes or fails), and read the final WAL position F;
 *   4. wait until the candidate has flushed F (else open the fence again and
 *      refuse): every acknowledged commit is then on the candidate;
 *   5. hand the leader key over to the candidate (one etcd transaction that
 *      also records `handed_over` and F);
 *   6. shut its server down (fast): the walsenders send the shutdown
 *      checkpoint to the standbys, and when started again the server asks
 *      etcd and starts as a standby of the new leader (cluster_boot.c).
 *
 * The candidate, once it holds the key, waits (a few seconds at most) until
 * the old leader's WAL stream has ended after F, so that the old leader's
 * last record, its shutdown checkpoint, is before the new timeline's fork
 * and it can follow without pg_rewind; then it promotes. Through all of
 * this the lease is renewed, so that a slow step never costs the key.
 */
import { performance } from 'perf_hooks';

import type { WorkerContext } from '../../runtime/index';
import { localClient } from './alter-system';
import type { Dcs } from './dcs';
import type { ClusterView, FailoverRequest } from './dcs-records';
import { lsnToNumber, numberToLsn, readLocal, readReplicas, type LocalState } from './local';
import { askPeer } from './peers';

/** What the handover needs from the member running it. */
export interface HandoverHost {
  readonly name: string;
  readonly w: WorkerContext<any>;
  readonly dcs: Dcs;
  /**
   * Renew the lease (throws when it is lost); with `reopen`, open the write
   * fence again for the renewed lease.
   */
  keep(reopen: boolean): Promise<void>;
  closeFence(reason: string): void;
  /** Called just before writes stop (a Citus worker group pauses its writes on the coordinator, docs/citus.md). */
  beforeDemote?(): Promise<void>;
  leaseId(): string;
  /** Whether the request was deleted (withdrawn by its caller) after performance.now() was `t`. */
  withdrawnSince(t: number): boolean;
  /** The request's state changed (as this leader wrote it): show it in the status now, while the handover runs. */
  progress(req: FailoverRequest): void;
  loopWaitMs(): number;
  retryTimeoutMs(): number;
  maxLagBytes(): number;
  event(kind: string, detail: Record<string, unknown>, level?: 'info' | 'warning'): void;
}

/** How long the leader waits for the candidate to flush its final position. */
const CATCH_UP_MS = 10_000;
/** How long the candidate has, before writes stop, to confirm WAL (reach the leader's flush position, or move towards it). */
export const CONFIRM_MS = 2_000;
/** How long the candidate waits for the old leader's WAL stream to end. */
export const OLD_LEADER_MS = 5_000;
const STEP_MS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A request that is still to be acted on: posted, not past its deadline. */
export function pending(req: FailoverRequest | null, kind: FailoverRequest['kind']): req is FailoverRequest {
  return !!req && req.kind === kind && req.state === 'requested' && Date.parse(req.deadline) > Date.now();
}

/**
 * Run `p` while renewing the lease every loop_wait; resolves with p's value
 * once no renewal is in flight any more. A renewal with `reopen` opens the
 * fence: one still waiting for etcd when `p` ends would open it after the
 * caller's next step has closed it (the write fence reopened in the middle
 * of a switchover's catch-up, seen in a test run: writes accepted after the
 * final position the candidate must reach).
 */
async function renewing<T>(h: HandoverHost, reopen: boolean, p: Promise<T>): Promise<T> {
  let done = false;
  let wake: () => void = () => undefined;
  const tick = (async () => {
    while (!done) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, h.loopWaitMs());
      });
      if (!done) await h.keep(reopen);
    }
  })().catch(() => undefined);
  try {
    return await p;
  } finally {
    done = true;
    wake();
    await tick;
  }
}

/** Why `to` cannot take over from this leader now, or null. */
async function candidateProblem(h: HandoverHost, view: ClusterView, local: LocalState, to: string): Promise<string | null> {
  const m = view.members.get(to);
  if (!m) return `member "${to}" is not a member of the cluster (no key in etcd)`;
  if (m.nofailover || m.priority <= 0) return `member "${to}" has the nofailover tag (or priority 0)`;
  if (m.sysid !== local.sysid) return `member "${to}" has another system identifier (${m.sysid})`;
  const replica = readReplicas(h.w).find((r) => r.name === to);
  if (!replica || replica.state !== 'streaming') return `member "${to}" does not stream from this leader (${replica ? replica.state : 'not connected'})`;
  let peer;
  try {
    peer = await askPeer(m.conninfo, h.retryTimeoutMs());
  } catch (err) {
    return `member "${to}" does not answer: ${(err as Error).message}`;
  }
  if (!peer.recovery) return `member "${to}" is not a standby`;
  // a WAL receiver replies at least every wal_receiver_status_interval: one silent for twice that is stuck
  // (its server answers, its TCP connection stays open), and would cost the clients a fence to the deadline
  const silentFor = 2 * peer.statusIntervalMs + h.loopWaitMs();
  if (peer.statusIntervalMs > 0 && replica.replyAgeMs !== null && replica.replyAgeMs > silentFor) {
    return `member "${to}"'s WAL receiver has not replied for ${replica.replyAgeMs} ms (its wal_receiver_status_interval is ${peer.statusIntervalMs} ms): it would not catch up; nothing was fenced`;
  }
  if (peer.timeline !== null && peer.timeline !== local.timeline) return `member "${to}" is on timeline ${peer.timeline}, not the leader's ${local.timeline}`;
  const lag = (local.lsn ?? 0) - (peer.lsn ?? 0);
  if (lag > h.maxLagBytes()) return `member "${to}" lags ${lag} bytes behind the leader, more than maximum_lag_on_failover (${h.maxLagBytes()} bytes)`;
  return null;
}

/**
 * Step 2's check, with writes still accepted: the candidate's WAL receiver
 * confirms the WAL flushed here so far (the checkpoint's record included),
 * or at least moves its flush position, within CONFIRM_MS. A healthy
 * receiver replies as soon as its flush position moves; one that stopped
 * replying moments ago (frozen, stuck on its disk) is not yet "silent" to
 * the check of step 1, and would otherwise cost the clients a fence until
 * CATCH_UP_MS. Returns why it is refused, or null.
 */
async function candidateConfirms(h: HandoverHost, to: string): Promise<string | null> {
  const target = lsnToNumber(h.w.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn')[0].lsn) ?? 0;
  const t0 = performance.now();
  let first: number | null = null;
  let flushed: number | null = null;
  for (;;) {
    flushed = readReplicas(h.w).find((r) => r.name === to)?.flush ?? null;
    if (flushed !== null && flushed >= target) return null;
    if (flushed !== null && first !== null && flushed > first) return null;
    first ??= flushed;
    if (performance.now() - t0 > CONFIRM_MS) break;
    await sleep(STEP_MS);
  }
  const at = flushed === null ? 'does not stream from this leader' : `confirmed no WAL beyond ${numberToLsn(flushed)} (the leader's is at ${numberToLsn(target)})`;
  return `member "${to}" ${at} within ${CONFIRM_MS} ms while writes went on: its WAL receiver is stuck or stopped; nothing was fenced`;
}

async function refuse(h: HandoverHost, req: FailoverRequest, lease: string, reason: string): Promise<'refused'> {
  h.event('switchover_refused', { id: req.id, to: req.member, reason }, 'warning');
  h.progress({ ...req, state: 'refused', reason });
  await h.dcs.updateFailover({ ...req, state: 'refused', reason }, lease).catch(() => false);
  return 'refused';
}

/**
 * The leader's part. Returns 'handed_over' when the candidate holds the
 * leader key (this member must then shut its server down), 'refused'
 * when the switchover did not happen (writes go on here), 'lost' when the
 * leader key was lost meanwhile.
 */
export async function leadSwitchover(
  h: HandoverHost,
  req: FailoverRequest & { lease: string },
  view: ClusterView,
  local: LocalState,
): Promise<'handed_over' | 'refused' | 'lost'> {
  const lease = req.lease;
  const to = req.member;
  if (!to) return refuse(h, req, lease, 'the request names no candidate');
  const t0 = performance.now();
  const problem = await candidateProblem(h, view, local, to);
  if (problem) return refuse(h, req, lease, problem);
  if (!(await h.dcs.updateFailover({ ...req, state: 'accepted' }, lease))) return 'refused';
  h.progress({ ...req, state: 'accepted' });
  h.event('switchover_started', { id: req.id, to, requestedBy: req.requested_by });

  // 2. a checkpoint while writes still go on (over a client connection: the loop keeps renewing the lease)
  const { client } = localClient(h.w, 600_000);
  try {
    await renewing(h, true, (async () => {
      await client.connect();
      await client.query('CHECKPOINT');
    })());
  } catch (err) {
    return refuse(h, req, lease, `CHECKPOINT failed: ${(err as Error).message}`);
  } finally {
    client.end().catch(() => undefined);
  }
  const checkpointMs = Math.round(performance.now() - t0);
  const stuck = await renewing(h, true, candidateConfirms(h, to));
  if (stuck) return refuse(h, req, lease, stuck);
  if (h.withdrawnSince(t0)) return refuse(h, req, lease, 'the request was withdrawn (its caller was cancelled) before writes stopped');

  // 3. writes stop; sessions end so that no commit is in flight; the final position
  await h.beforeDemote?.();
  h.closeFence(`switchover to member "${to}"`);
  const fencedAt = new Date().toISOString();
  const tf = performance.now();
  const except = req.requested_by === h.name && req.pid ? req.pid : 0;
  // (the terminations in the select list of an outer query: in a WHERE clause they could run before the filters)
  const ended = h.w.query<{ pid: number }>(
    `SELECT pid, pg_terminate_backend(pid) AS ended
       FROM (SELECT pid FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> $1 OFFSET 0) AS s`,
    [except],
  ).map((r) => r.pid);
  for (let i = 0; i < 100 && ended.length > 0; i++) {
    const left = h.w.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [ended])[0].n;
    if (left === 0) break;
    await sleep(STEP_MS);
  }
  const final = h.w.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')[0].lsn;
  const finalBytes = lsnToNumber(final) ?? 0;
  await h.dcs.updateFailover({ ...req, state: 'fenced', lsn: finalBytes, fenced_at: fencedAt }, lease).catch(() => false);
  h.progress({ ...req, state: 'fenced', lsn: finalBytes, fenced_at: fencedAt });

  // 4. the candidate has everything up to F
  // counted from the fence (tf), so that a refusal for the deadline comes at the deadline, not before it by the
  // time the sessions took to end: its caller then reports a timeout (57014), not a refusal (55000)
  const limit = Math.min(CATCH_UP_MS, Math.max(1000, Date.parse(req.deadline) - Date.parse(fencedAt)));
  let lastRenew = performance.now();
  let flushed: number | null = null;
  for (;;) {
    flushed = readReplicas(h.w).find((r) => r.name === to)?.flush ?? null;
    if (flushed !== null && flushed >= finalBytes) break;
    if (h.withdrawnSince(t0)) {
      // the caller was cancelled (or pg_tsworker_ctl interrupted): call it off now, not at the deadline
      await h.keep(true).catch(() => undefined);
      return refuse(h, req, lease, `the request was withdrawn (its caller was cancelled) while member "${to}" caught up; writes resumed here`);
    }
    if (performance.now() - tf > limit) {
      await h.keep(true).catch(() => undefined);
      const got = flushed === null ? `stopped streaming from this leader before it flushed ${final}` : `flushed WAL only up to ${numberToLsn(flushed)} of ${final}`;
      return refuse(h, req, lease, `member "${to}" ${got} within ${limit} ms; writes resumed here`);
    }
    if (performance.now() - lastRenew >= h.loopWaitMs()) {
      lastRenew = performance.now();
      try {
        await h.keep(false);
      } catch {
        return 'lost';
      }
    }
    await sleep(5);
  }

  // 5. the key goes to the candidate's lease, with the state, in one transaction
  const fresh = await h.dcs.read();
  const target = fresh.members.get(to);
  if (fresh.failover?.id !== req.id || h.withdrawnSince(t0)) {
    await h.keep(true).catch(() => undefined);
    return refuse(h, req, lease, 'the request was withdrawn (its caller was cancelled) before the handover; writes resumed here');
  }
  if (!target) {
    await h.keep(true).catch(() => undefined);
    return refuse(h, req, lease, `member "${to}" left the cluster during the switchover; writes resumed here`);
  }
  const handed: FailoverRequest = { ...req, state: 'handed_over', lsn: finalBytes, fenced_at: fencedAt };
  if (!(await h.dcs.handOver(h.name, h.leaseId(), to, target.lease, handed, lease))) return 'lost';
  h.progress(handed);
  h.event('switchover_handed_over', {
    id: req.id,
    to,
    lsn: final,
    checkpointMs,
    catchUpMs: Math.round(performance.now() - tf),
    endedSessions: ended.length,
  });
  return 'handed_over';
}

/**
 * The candidate's part before it promotes: wait until the old leader's WAL
 * stream has ended (its server shut down after sending its shutdown
 * checkpoint) with everything up to F received, for OLD_LEADER_MS at most,
 * renewing the lease meanwhile. Returns how it ended, for the log.
 */
export async function awaitOldLeader(h: HandoverHost, req: FailoverRequest): Promise<string> {
  const t0 = performance.now();
  let lastRenew = t0;
  for (;;) {
    const local = readLocal(h.w);
    const received = local.lsn ?? 0;
    if (local.receiver !== 'streaming' && received >= (req.lsn ?? 0)) {
      return `the old leader's WAL stream ended at ${numberToLsn(received)} after ${Math.round(performance.now() - t0)} ms`;
    }
    if (performance.now() - t0 > OLD_LEADER_MS) {
      return `the old leader's WAL stream did not end within ${OLD_LEADER_MS} ms (received ${numberToLsn(received)}, final ${numberToLsn(req.lsn ?? 0)}); promoting: the old leader may need pg_rewind`;
    }
    if (performance.now() - lastRenew >= h.loopWaitMs()) {
      lastRenew = performance.now();
      await h.keep(true).catch(() => undefined);
    }
    await sleep(STEP_MS);
  }
}

/**
 * A switchover asked on this leader: wait (at most 2 s) until the asking
 * backend has returned from tsworker.switchover() (its result says the
 * candidate holds the key and every commit), so that the shutdown does not
 * end that session before the caller has the answer.
 */
export async function awaitCaller(w: WorkerContext<any>, pid: number): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < 2000) {
    const active = w.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active'`, [pid])[0].n;
    if (active === 0) return;
    await sleep(10);
  }
}

/**
 * Shut this server down (fast: SIGINT to the postmaster, this worker's
 * parent), after a switchover handed the leader key over.
 */
export function shutDownServer(w: WorkerContext<any>): boolean {
  const pidFile = w.query<{ t: string }>(`SELECT pg_read_file('postmaster.pid') AS t`)[0].t;
  const pid = Number(pidFile.split('\n')[0]);
  if (!Number.isInteger(pid) || pid !== process.ppid) {
    w.log.warning(`switchover: not shutting down: postmaster.pid names ${pid}, this worker's parent is ${process.ppid}`);
    return false;
  }
  process.kill(pid, 'SIGINT');
  return true;
}
