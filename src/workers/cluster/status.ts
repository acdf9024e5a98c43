/**
 * What a cluster member shows of itself: its status in tsworker.workers,
 * its key `members/<name>` in etcd (what the other members and the
 * election read), and the state its health endpoints answer from
 * (api.ts).
 */
import { apiStateOf, type ApiState } from './api';
import type { MemberData } from './dcs-records';
import { numberToLsn, type LocalState } from './local';
import type { MemberCore } from './member-core';

/** Show the member in tsworker.workers (`status`). */
export function publishStatus(m: MemberCore): void {
  const l = m.local;
  const f = m.running ?? m.view?.failover ?? null;
  const status = {
    mode: 'cluster',
    ...(m.citus ? { citus: m.citus.status() } : {}),
    member: m.name,
    scope: m.s.scope,
    role: l ? (l.recovery ? 'standby' : 'primary') : null,
    leader: m.view?.leader?.name ?? null,
    timeline: l?.timeline ?? null,
    lsn: l?.lsn != null ? numberToLsn(l.lsn) : null,
    fenced: l && !l.recovery ? !m.fence.open : null,
    fence: l && !l.recovery ? m.fence.reason : null,
    following: m.follower.following,
    needs: m.follower.needs,
    upstream: m.follower.upstreamError,
    conninfo: m.conninfoError ?? 'ok',
    dcs: m.dcsError ? `error: ${m.dcsError}`.slice(0, 300) : 'ok',
    sync: m.view?.sync?.members ?? null,
    paused: m.paused,
    switchover: f ? { id: f.id, kind: f.kind, from: f.leader, to: f.member, state: f.state, ...(f.reason ? { reason: f.reason } : {}) } : null,
    error: m.configError,
    lastEvent: m.log.lastEvent,
  };
  try {
    m.w.status.set(status);
  } catch {
    m.w.status.set({ ...status, dcs: 'error', fence: status.fence?.slice(0, 200) ?? null });
  }
}

/** Publish members/<name> in etcd, under this process's lease. */
export async function publishMember(m: MemberCore, local: LocalState): Promise<void> {
  if (!m.lease) return;
  const data: MemberData = {
    conninfo: m.s.conninfo,
    role: local.recovery ? 'replica' : 'primary',
    state: !local.recovery && !m.fence.open ? 'fenced' : 'running',
    timeline: local.timeline,
    lsn: local.lsn,
    replayed: local.replayed,
    streaming_from: local.sender,
    priority: m.s.priority,
    // a member that must be rebuilt (its WAL is not the cluster's) is never a candidate
    nofailover: m.s.nofailover || m.follower.needs === 'rebuild',
    nosync: m.s.nosync,
    sysid: local.sysid,
    api_url: m.s.restapi_listen ? `http://${m.s.restapi_listen}/patroni` : null,
    error: m.conninfoError ?? m.follower.upstreamError,
    at: new Date().toISOString(),
  };
  if (!(await m.dcs.touchMember(m.name, data, m.lease.id))) {
    m.log.note(`member key "${m.name}" is held by another lease: not published (see the next loop)`, 'warning');
  }
}

/** What the health endpoints answer from, as of this loop. */
export function buildApiState(m: MemberCore, local: LocalState, lastLoopAt: number): ApiState {
  return {
    ...apiStateOf(local, m.view, m.s),
    name: m.name,
    needs: m.follower.needs,
    leader: m.leading,
    serverVersion: m.serverVersion,
    postmasterStartTime: m.postmasterStart,
    dcsLastSeen: m.viewAt !== null ? Math.floor(m.viewAt / 1000) : null,
    lastLoopAt,
    ttlMs: m.t.ttlMs,
  };
}
