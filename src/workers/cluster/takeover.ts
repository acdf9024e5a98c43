/**
 * How a member becomes the leader: the election when nobody leads (only the
 * most advanced eligible member takes the key, election.ts, after asking
 * its peers directly, peers.ts), a manual failover an operator asked for
 * (tsworker.failover()), and the promotion of this server once it holds
 * the key (the lease is renewed while PostgreSQL promotes; the promotion is
 * recorded in etcd's history and in tsworker.events).
 */
import { performance } from 'perf_hooks';

import { numberToLsn, readHistoryLine, readLocal, type LocalState } from './local';
import { promoteAndWait } from '../promote';
import { beforePromote, onPromote, type PromotionEvent } from '../promoter/hooks';
import type { ClusterView, FailoverRequest } from './dcs-records';
import { elect, type Candidate } from './election';
import { pending } from './handover';
import type { MemberCore } from './member-core';
import { askMembers } from './peers';
import { STRICT_PLACEHOLDER, setStandbyNames, standbyNames } from './sync';

export async function election(m: MemberCore, local: LocalState, view: ClusterView): Promise<void> {
  const me: Candidate = {
    name: m.name,
    lsn: local.lsn,
    timeline: local.timeline,
    priority: m.s.priority,
    nofailover: m.s.nofailover || m.follower.needs === 'rebuild',
    sysid: local.sysid,
    recovery: local.recovery,
    writable: false,
    source: 'self',
  };
  const clusterTimeline = Math.max(view.status?.timeline ?? 0, ...view.history.map((h) => h[0] + 1)) || null;
  const manual = pending(view.failover, 'failover') ? view.failover : null;
  if (manual && manual.member !== m.name) {
    m.log.note(`no leader: a manual failover to member "${manual.member}" was requested: not taking the leader key`);
    return;
  }
  if (manual) {
    await manualFailover(m, local, view, manual);
    return;
  }
  if (m.paused && local.recovery) {
    m.log.note('no leader: maintenance mode (paused): no automatic failover; tsworker.resume() or tsworker.failover() ends it');
    return;
  }
  // etcd dropped this member's own lease: it was frozen (or out of reach) longer than ttl, and every other
  // member's key, the old leader's too, may have expired with it. An election now could be one of a single
  // member, behind a leader that is alive and about to come back: wait one ttl and a loop for the members
  // to publish again (a former leader that answers takes the key back itself, election.ts).
  const regrant = m.leaseLostAt > 0 ? m.leaseLostAt + m.t.ttlMs + m.t.loopWaitMs - performance.now() : 0;
  if (local.recovery && regrant > 0) {
    m.log.note(`no leader: etcd dropped this member's lease (every member's key may have expired with it): waiting ttl + loop_wait (${m.t.ttlMs + m.t.loopWaitMs} ms) from then for the members to publish again before an election`);
    return;
  }
  const peers = await askMembers(view, m.name, m.t.retryTimeoutMs);
  // A member alive in etcd that did not answer may hold more WAL than it published: wait for it,
  // for one ttl after the leader went; then go by what it published (it may be cut off from here only).
  const silent = peers.filter((p) => p.source === 'etcd' && !p.nofailover && p.priority > 0);
  if (silent.length > 0 && Date.now() - m.leaderGoneAt < m.t.ttlMs) {
    m.log.note(`no leader: waiting for ${silent.map((p) => `"${p.name}"`).join(', ')} to answer before comparing WAL positions`);
    return;
  }
  const verdict = elect({
    me,
    peers,
    initialize: view.initialize,
    clusterTimeline,
    leaderOptime: view.status?.optime ?? null,
    maxLagBytes: m.s.maximum_lag_on_failover * 1024,
    // synchronous_mode off: a sync key left from when it was on binds nobody
    sync: m.s.synchronous_mode && view.sync && view.sync.leader ? view.sync : null,
  });
  if (!verdict.take) {
    m.log.note(`no leader: not taking the leader key: ${verdict.why}`);
    return;
  }
  const ev: PromotionEvent = {
    kind: 'promotion',
    worker: m.w.name,
    oldPrimary: view.sync?.leader ?? view.history[view.history.length - 1]?.[4] ?? '(unknown)',
    reason: verdict.why,
    failures: 0,
    lsn: local.lsn !== null ? numberToLsn(local.lsn) : null,
    newTimeline: null,
    durations: { detectionMs: Date.now() - m.leaderGoneAt },
    at: new Date().toISOString(),
  };
  if (local.recovery) {
    const veto = await beforePromote(m.s.before_promote, ev, 10_000);
    if (veto) {
      m.log.event('veto', { reason: veto }, 'warning');
      return;
    }
  }
  if (!(await takeKey(m, view, verdict.why, ev.lsn))) return;
  if (local.recovery) await promote(m, local, view, verdict.why, ev);
}

/** Take the leader key (atomic create) and open the fence; false when another member was first. */
async function takeKey(m: MemberCore, view: ClusterView, why: string, lsn: string | null): Promise<boolean> {
  await m.renewLease();
  if (!(await m.dcs.acquireLeader(m.name, m.lease!.id))) {
    m.log.note('another member took the leader key first');
    return false;
  }
  m.leading = true;
  m.acquired();
  m.log.event('leader_acquired', { reason: why, lsn });
  m.openFence();
  return true;
}

/**
 * A manual failover to this member (tsworker.failover()): the operator
 * compared the members' WAL (and forced it, if another one held more);
 * only a primary that still accepts writes stops it.
 */
async function manualFailover(m: MemberCore, local: LocalState, view: ClusterView, req: FailoverRequest & { lease: string }): Promise<void> {
  const peers = await askMembers(view, m.name, m.t.retryTimeoutMs);
  const live = peers.find((p) => p.source === 'direct' && !p.recovery && p.writable && p.sysid === local.sysid);
  if (live) {
    const reason = `member "${live.name}" is a primary that accepts writes: not failing over`;
    m.log.event('failover_refused', { id: req.id, reason }, 'warning');
    await m.dcs.updateFailover({ ...req, state: 'refused', reason }, req.lease).catch(() => false);
    return;
  }
  const why = `manual failover requested on "${req.requested_by}"${req.force ? ' (forced)' : ''}`;
  if (!(await takeKey(m, view, why, local.lsn !== null ? numberToLsn(local.lsn) : null))) return;
  if (local.recovery) await promote(m, local, view, why, undefined, req);
  else await m.dcs.updateFailover({ ...req, state: 'done', timeline: local.timeline, done_at: new Date().toISOString() }, req.lease).catch(() => false);
}

export async function promote(m: MemberCore, local: LocalState, view: ClusterView, why: string, ev?: PromotionEvent, req?: FailoverRequest & { lease: string }): Promise<void> {
  if (m.s.synchronous_mode) {
    // nobody may take the key from this member until its own standbys are confirmed synchronous
    if (!(await m.dcs.writeSync({ leader: m.name, members: [], quorum: m.s.synchronous_node_count }, view.sync?.modRevision ?? null))) {
      await m.abandon('the synchronous state changed under this member');
      return;
    }
    await setStandbyNames(m.w, m.s.synchronous_mode_strict ? standbyNames(1, [STRICT_PLACEHOLDER]) : '', m.t.retryTimeoutMs);
  }
  m.log.event('promoting', { reason: why });
  // the lease is renewed while PostgreSQL promotes: a slow promotion must not cost the key
  const done = await promoteAndWait(m.w, 60_000, {
    between: {
      everyMs: m.t.loopWaitMs,
      // the promotion is withdrawn once the key is lost, or may be (the fence closed: the lease can expire before
      // etcd answers again); a slow etcd answer alone does not stop it
      fn: () =>
        m.keepLeading(true).catch((err: Error) => {
          if (m.leading && m.fence.open) return;
          throw err;
        }),
    },
    spare: req && req.requested_by === m.name && req.pid ? req.pid : null,
  });
  if (!done.ok) {
    m.log.event('promotion_failed', { reason: `${done.withdrawn ?? 'the server did not leave recovery'}: the promote request was withdrawn` }, 'warning');
    await m.abandon('the promotion failed');
    return;
  }
  const promoteMs = done.ms;
  // the lease lost while PostgreSQL promoted (its request could not be withdrawn in time): this server is a
  // primary without the key; another member may be elected, and may take the same timeline ID
  if (!(await m.confirmLeader().catch(() => false))) {
    m.log.event('promoted_without_key', { timeline: readLocal(m.w).timeline, reason: why, what: 'this server stays fenced; if another member leads on the same timeline ID, this one must be rebuilt (its promoter says so)' }, 'warning');
    m.loseLeadership('the leader key was lost while this server promoted');
    return;
  }
  const after = readLocal(m.w);
  m.local = after;
  m.timelineSeen = after.timeline;
  const line = readHistoryLine(m.w, after.timeline, m.name);
  m.log.event('promoted', {
    timeline: after.timeline,
    lsn: local.lsn !== null ? numberToLsn(local.lsn) : null,
    promoteMs,
    promoteRequests: done.requests,
    sessionsEnded: done.sessionsEnded,
    detectionMs: ev?.durations.detectionMs ?? null,
    reason: why,
  });
  if (line && req) line[2] = why;
  if (line) await m.dcs.appendHistory(line).catch((err: Error) => m.w.log.warning(`could not record the promotion in etcd's history: ${err.message}`));
  if (req) {
    const doneAt = new Date().toISOString();
    m.log.event(req.kind === 'switchover' ? 'switchover_done' : 'failover_done', {
      id: req.id,
      from: req.leader,
      requestedBy: req.requested_by,
      timeline: after.timeline,
      finalLsn: req.lsn !== undefined ? numberToLsn(req.lsn) : null,
      fencedAt: req.fenced_at ?? null,
      doneAt,
      force: req.force,
    });
    await m.dcs.updateFailover({ ...req, state: 'done', timeline: after.timeline, done_at: doneAt }, req.lease).catch(() => false);
  }
  await m.confirmLeader().catch(() => false);
  m.storeEvents();
  if (ev && m.s.on_promote) {
    const done = { ...ev, newTimeline: after.timeline, durations: { ...ev.durations, promoteMs } };
    onPromote(m.s.on_promote, done, 60_000).then(
      (line2) => m.w.log.log(line2),
      (err: Error) => m.w.log.warning(`on_promote: ${err.message}`),
    );
  }
}
