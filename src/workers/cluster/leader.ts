/**
 * What a member does in a loop while it holds the leader key under its own
 * lease: confirm the key (compare on name and lease) and publish the
 * leader's position, open the write fence for the renewed lease, promote if
 * still a standby, lead a switchover an operator asked for (handover.ts),
 * and keep the synchronous set (sync.ts).
 */
import type { ClusterView, FailoverRequest } from './dcs-records';
import { awaitCaller, awaitOldLeader, leadSwitchover, pending, shutDownServer, type HandoverHost } from './handover';
import { readReplicas, type LocalState } from './local';
import type { MemberCore } from './member-core';
import { publishStatus } from './status';
import { promote } from './takeover';

export async function lead(m: MemberCore, local: LocalState, view: ClusterView): Promise<void> {
  if (!(await m.confirmLeader())) {
    m.loseLeadership('the leader key is no longer this member\'s');
    return;
  }
  if (!m.leading) {
    m.leading = true;
    m.log.event('leader_confirmed', { lease: m.lease!.id });
  }
  m.openFence();
  m.follower.reset();
  const req = view.failover;
  if (local.recovery) {
    if (req && req.kind === 'switchover' && req.state === 'handed_over' && req.member === m.name) {
      const how = await awaitOldLeader(handoverHost(m), req);
      m.w.log.log(`switchover from "${req.leader}": ${how}`);
      await m.citus?.beforePromote();
      await promote(m, local, view, `switchover from member "${req.leader}" (requested on "${req.requested_by}")`, undefined, req);
      return;
    }
    await promote(m, local, view, 'this member holds the leader key but is a standby');
    return;
  }
  if (pending(req, 'switchover') && (req.leader === null || req.leader === m.name) && req.member !== m.name) {
    const outcome = await leadSwitchover(handoverHost(m), req as FailoverRequest & { lease: string }, view, local);
    if (outcome === 'handed_over') {
      m.leading = false;
      m.handedOver = true;
      if (req.requested_by === m.name && req.pid) await awaitCaller(m.w, req.pid);
      m.w.log.log(`switchover: member "${req.member}" holds the leader key; shutting this server down (fast): started again, it follows "${req.member}"`);
      // if the server cannot be shut down from here, it stays fenced and says it needs a restart
      if (!shutDownServer(m.w)) m.handedOver = false;
      return;
    }
    if (outcome === 'lost') {
      const reason = 'this leader lost its key during the switchover (etcd did not answer in time); writes resume here once it leads again';
      m.log.event('switchover_refused', { id: req.id, to: req.member, reason }, 'warning');
      await m.dcs.updateFailover({ ...req, state: 'refused', reason }, (req as FailoverRequest & { lease: string }).lease).catch(() => false);
      m.loseLeadership('the leader key was lost during a switchover');
    }
    return;
  }
  // a switchover this member had begun and then lost its key in (etcd did not answer): refused, so that its
  // caller learns it now rather than at its deadline (the refusal could not be written then)
  if (req && req.kind === 'switchover' && req.leader === m.name && (req.state === 'accepted' || req.state === 'fenced')) {
    const reason = 'the leader lost its key during the switchover (etcd did not answer in time), then took it back; writes resumed there';
    m.log.event('switchover_refused', { id: req.id, to: req.member, reason }, 'warning');
    await m.dcs.updateFailover({ ...req, state: 'refused', reason }, req.lease).catch(() => false);
  }
  // a switchover to this member that it completed while etcd did not take the "done" (review 14d finding 5):
  // written now, so that the request stops counting as in progress (and blocking tsworker.failover()) until its deadline
  if (req && req.kind === 'switchover' && req.state === 'handed_over' && req.member === m.name) {
    m.w.log.log(`switchover ${req.id} from "${req.leader}": this member leads and has promoted; recording it as done in etcd`);
    await m.dcs.updateFailover({ ...req, state: 'done', timeline: local.timeline, done_at: new Date().toISOString() }, req.lease).catch(() => false);
  }
  await keepSync(m, local, view);
}

/** Synchronous mode: keep synchronous_standby_names and the `sync` key in step with the healthy standbys. */
async function keepSync(m: MemberCore, local: LocalState, view: ClusterView): Promise<void> {
  if (!m.s.synchronous_mode && !view.sync) return;
  const replicas = readReplicas(m.w);
  const healthy = replicas
    .filter((r) => r.state === 'streaming')
    .filter((r) => {
      const p = view.members.get(r.name);
      return p && !p.nosync && !p.nofailover && p.sysid === local.sysid && p.priority > 0;
    })
    .map((r) => r.name);
  await m.sync.step(m.s, view, local.synchronousStandbyNames, replicas, healthy, local.lsn ?? 0);
}

/** What a switchover needs from this member (handover.ts). */
function handoverHost(m: MemberCore): HandoverHost {
  return {
    name: m.name,
    w: m.w,
    dcs: m.dcs,
    keep: (reopen) => m.keepLeading(reopen),
    closeFence: (reason) => m.fence.close(reason),
    beforeDemote: async () => m.citus?.beforeDemote(),
    leaseId: () => m.lease!.id,
    withdrawnSince: (t) => m.failoverDeletedAt > t,
    progress: (req) => {
      m.running = req;
      publishStatus(m);
    },
    loopWaitMs: () => m.t.loopWaitMs,
    retryTimeoutMs: () => m.t.retryTimeoutMs,
    maxLagBytes: () => m.s.maximum_lag_on_failover * 1024,
    event: (kind, detail, level) => m.log.event(kind, detail, level),
  };
}
