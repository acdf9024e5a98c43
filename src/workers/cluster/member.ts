/**
 * Cluster mode of the built-in promoter: one member of a cluster of N
 * servers whose leader holds a lease in etcd (docs/failover.md, "Cluster
 * mode"). This file is the member's loop; it follows Patroni's
 * `Ha.run_cycle`:
 *
 *   every loop_wait (and at once when the leader key changes):
 *     read this server's state (SPI), renew this member's lease, read the cluster;
 *     holds the leader key  -> leader.ts: confirm it (compare on name and lease: only a
 *                              lease this process granted counts, never the name alone),
 *                              open the write fence until shortly before the lease could
 *                              expire, promote if still a standby, keep the synchronous set;
 *     another member leads  -> close the fence; follow it (follow.ts: re-point
 *                              primary_conninfo), or say that this server needs a restart
 *                              or pg_rewind;
 *     nobody leads          -> takeover.ts: election: only the most advanced eligible
 *                              member takes the key (atomic create), then promotes;
 *     an operator's request -> switchover (handover.ts) on the leader and its candidate;
 *                              manual failover on the member it names;
 *     paused (maintenance)  -> no election and no fencing for lack of etcd;
 *     publish members/<name> and the status (status.ts).
 *
 * It also serves the health endpoints (api.ts), watches the leader key, and
 * releases the leader key at once when the postmaster dies. The state the
 * parts share, and the lease, are in member-core.ts.
 */
import { performance } from 'perf_hooks';

import { Trigger } from '../trigger';
import { HealthApi, type ApiState } from './api';
import { DcsError } from './dcs';
import type { ClusterView } from './dcs-records';
import { dutyOf } from './duty';
import { WriteFence } from './fence';
import { lead } from './leader';
import { readLocal, type LocalState } from './local';
import { MemberCore, type MemberCtx } from './member-core';
import { citusConfigErrors, citusGroupAsWritten } from './citus-settings';
import { checkOwnConninfo } from './reach';
import { configErrors, fenceMarginMs, timing } from './settings';
import { buildApiState, publishMember, publishStatus } from './status';
import { election } from './takeover';

export type { MemberSettings } from './member-core';

/** Reported as the health endpoints' `patroni.version`. */
const VERSION = '0.1.0';
/** How often a member whose own conninfo does not reach it checks again. */
const CONNINFO_RECHECK_MS = 30_000;

export class ClusterMember {
  private readonly m: MemberCore;
  private api: HealthApi | null = null;
  private apiListen = '';
  private apiState: ApiState | null = null;
  private lastLoopAt = performance.now();
  private unwatch: (() => void) | null = null;
  private watching = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last check of this member's own conninfo (0: to do), and whether one runs. */
  private conninfoCheckedAt = 0;
  private conninfoChecking = false;
  private readonly trig = new Trigger();
  private postmasterGone = false;
  /** Another lease holds this member's key in etcd: which one, since when (performance.now()). */
  private nameHeld: { lease: string; since: number } | null = null;
  /** Another live process uses this member's name: no cluster duty until a restart. */
  private nameRefused = false;

  constructor(private readonly w: MemberCtx) {
    this.m = new MemberCore(w);
  }

  get name(): string {
    return this.m.name;
  }

  /** Run the next loop at once. */
  trigger(why: string): void {
    this.trig.fire(why);
  }

  /** Apply changed settings (a reload). */
  reload(): void {
    const m = this.m;
    const t = timing(m.s);
    if (t.adjusted && t.adjusted !== m.t.adjusted) this.w.log.warning(t.adjusted);
    m.t = t;
    m.dcs.setTimeout(t.retryTimeoutMs);
    this.conninfoCheckedAt = 0; // tsworker_promoter.conninfo may have changed
    this.trigger('configuration reloaded');
  }

  async run(): Promise<void> {
    const m = this.m;
    const errors = [...configErrors(m.s), ...citusConfigErrors(m.s, this.w.setting('shared_preload_libraries') ?? '', citusGroupAsWritten(this.w))];
    if (!WriteFence.managed()) errors.push('cluster mode was not on when the server started (tsworker_promoter.etcd_hosts needs a restart), so writes are not fenced');
    if (errors.length > 0) {
      m.configError = errors.join('; ');
      this.w.log.warning(`cluster mode cannot run: ${m.configError}`);
      publishStatus(m);
      while (await this.w.wait()) publishStatus(m);
      return;
    }
    if (m.t.adjusted) this.w.log.warning(m.t.adjusted);
    this.w.log.log(
      `cluster mode: member "${m.name}" of "${m.s.scope}" (etcd ${m.s.etcd_hosts}, ttl ${m.s.ttl} s, loop_wait ${m.t.loopWaitMs} ms, retry_timeout ${m.t.retryTimeoutMs} ms; writes stop ${m.t.fenceMarginMs} ms before the lease can expire)`,
    );
    this.w.on('postmasterDeath', () => this.postmasterDied());
    await this.startApi();
    let next = performance.now();
    try {
      for (;;) {
        if (!(await this.trig.pause(this.w, next - performance.now()))) break;
        const why = this.trig.take();
        if (why) this.w.log.debug(`running the cluster loop at once: ${why}`);
        next = performance.now() + m.t.loopWaitMs;
        await this.cycle();
        this.lastLoopAt = performance.now();
        if (this.apiListen !== m.s.restapi_listen) await this.startApi();
      }
    } finally {
      await this.stopping();
    }
  }

  private async startApi(): Promise<void> {
    this.api?.close();
    this.api = null;
    this.apiListen = this.m.s.restapi_listen;
    if (!this.apiListen) return;
    const api = new HealthApi(() => this.apiState, () => this.m.fence.open, VERSION, this.m.citus ? (p, b) => this.m.citus!.handlePost(p, b) : undefined);
    try {
      await api.listen(this.apiListen);
      this.api = api;
      this.w.log.log(`health endpoints on http://${this.apiListen}/`);
    } catch (err) {
      this.w.log.warning(`could not listen on ${this.apiListen} for the health endpoints: ${(err as Error).message}`);
    }
  }

  /** The server is shutting down: a standby gives up its member key; the leader keeps its lease until it expires. */
  private async stopping(): Promise<void> {
    const m = this.m;
    this.unwatch?.();
    clearTimeout(this.expiryTimer);
    this.api?.close();
    m.fence.stop();
    if (this.postmasterGone) return; // postmasterDied() revokes the lease, then closes the client
    if (m.lease && !m.leading) await m.dcs.revokeLease(m.lease.id).catch(() => undefined);
    await m.citus?.close();
    m.dcs.close();
  }

  /** The postmaster is gone: writes stop, and the leader key goes at once (revoking the lease deletes it). */
  private async postmasterDied(): Promise<void> {
    const m = this.m;
    this.postmasterGone = true;
    m.fence.close('the postmaster is gone');
    if (!m.lease) return;
    try {
      await m.dcs.revokeLease(m.lease.id);
      if (m.leading) this.w.log.log('the postmaster is gone: released the leader key');
    } catch (err) {
      this.w.log.warning(`the postmaster is gone, and the lease could not be revoked: ${(err as Error).message}`);
    } finally {
      m.dcs.close();
    }
  }

  /** Watch the leader key (once; not waited for: the loop does not need it, it only runs sooner). */
  private ensureWatch(): void {
    const m = this.m;
    if (this.watching) return;
    this.watching = true;
    m.dcs
      .watchLeader((what, value, key, kv) => {
        if (key === 'status') {
          if (kv) m.expiry.statusWritten(kv.modRevision);
          return;
        }
        if (key === 'config') {
          // pause/resume: every member shows it (status, health endpoints) at once, not a loop later
          this.trigger('the cluster configuration (pause) changed');
          return;
        }
        if (key === 'leader') m.expiry.observe(what === 'put' && kv ? kv.lease : null, m.view?.statusRevision ?? null);
        if (key === 'failover') {
          if (what === 'delete') m.failoverDeletedAt = performance.now();
          this.trigger(`an operator's request was ${what === 'delete' ? 'deleted' : 'posted or updated'}`);
          return;
        }
        // in maintenance mode a deleted key does not fence (another member taking it does)
        if (m.leading && ((what === 'delete' && !m.paused) || (what === 'put' && value !== m.name))) {
          m.fence.close(what === 'delete' ? 'the leader key was deleted' : `member "${value}" took the leader key`);
        }
        this.trigger(`the leader key was ${what === 'delete' ? 'deleted' : `set to "${value}"`}`);
      })
      .then(
        (unwatch) => {
          this.unwatch = unwatch;
        },
        () => {
          this.watching = false; // the loop tries again
        },
      );
  }

  private async cycle(): Promise<void> {
    const m = this.m;
    const local = readLocal(this.w);
    m.local = local;
    if (!local.recovery) m.timelineSeen = local.timeline;
    else {
      // without a WAL receiver a standby's timeline reads as its last restartpoint's: keep the one it streamed on
      if (local.receiver === 'streaming') m.timelineSeen = Math.max(m.timelineSeen, local.timeline);
      local.timeline = Math.max(local.timeline, m.timelineSeen);
    }
    try {
      let view: ClusterView;
      if (m.lease) {
        await m.renewLease();
        view = await m.dcs.read();
      } else {
        view = await m.dcs.read();
        await m.renewLease();
      }
      m.view = view;
      m.running = null; // the `failover` key just read says where a switchover this member ran stands
      m.viewAt = Date.now();
      m.expiry.contact();
      m.expiry.observe(view.leader?.lease ?? null, view.statusRevision);
      await this.askLeaseTtl();
      this.notePause(view);
      if (m.dcsError) m.log.event('dcs_reachable', { after: m.dcsError });
      m.dcsError = null;
      this.ensureWatch();
      await this.decide(local, view);
      // never over the key of another process with this name (nameTaken())
      if (!this.nameHeld && !this.nameRefused) await publishMember(m, local);
      await m.citus?.heartbeat(m.leading && m.fence.open && m.local?.recovery === false);
    } catch (err) {
      const msg = (err as Error).message;
      if (!(err instanceof DcsError)) {
        this.w.log.warning(`the cluster loop failed: ${(err as Error).stack ?? msg}`);
      } else {
        const leaderOpen = m.leading && !m.paused && !local.recovery && m.fence.open;
        if (!m.dcsError) {
          // said once: how long writes go on (the fence then closes by itself, and says so: `fenced`)
          m.log.event('dcs_unreachable', { error: msg, leading: m.leading, ...(leaderOpen ? { writesStopInMs: m.fence.remainingMs } : {}) }, 'warning');
        }
        m.dcsError = msg;
        if (m.leading && m.paused && !local.recovery) {
          // maintenance mode: no fencing for lack of etcd (Patroni's pause)
          m.fence.openUntilTime(performance.now() + m.t.ttlMs, 'maintenance mode ended while etcd was unreachable');
          m.log.note('etcd unreachable; maintenance mode: writes go on', 'warning');
        }
      }
    }
    this.checkConninfo();
    this.scheduleExpiry();
    m.storeEvents();
    publishStatus(m);
    this.apiState = buildApiState(m, local, this.lastLoopAt);
  }

  /**
   * In the background: does tsworker_promoter.conninfo reach this very
   * server, for a session and for streaming? At start, after a reload, and
   * every CONNINFO_RECHECK_MS while it does not; said in the status, the
   * events and the member key (other members and /cluster see it).
   */
  private checkConninfo(): void {
    const m = this.m;
    const now = performance.now();
    if (this.conninfoChecking || (this.conninfoCheckedAt !== 0 && (m.conninfoError === null || now - this.conninfoCheckedAt < CONNINFO_RECHECK_MS))) return;
    const local = m.local;
    if (!local) return;
    this.conninfoChecking = true;
    this.conninfoCheckedAt = now;
    checkOwnConninfo(m.s.conninfo, { sysid: local.sysid, postmasterStart: m.postmasterStart }, Math.max(m.t.retryTimeoutMs, 2000))
      .then((problem) => {
        if (problem !== null && problem !== m.conninfoError) m.log.event('conninfo_unusable', { error: problem }, 'warning');
        if (problem === null && m.conninfoError !== null) m.log.event('conninfo_usable', { conninfo: 'reaches this server again' });
        m.conninfoError = problem;
      })
      .finally(() => {
        this.conninfoChecking = false;
      });
  }

  private notePause(view: ClusterView): void {
    const m = this.m;
    const paused = view.config?.pause === true;
    if (paused === m.paused) return;
    m.paused = paused;
    if (paused) m.log.event('paused', { at: view.config?.paused_at ?? null, by: view.config?.paused_by ?? null, what: 'maintenance mode: no automatic failover, no fencing for lack of etcd' });
    else m.log.event('resumed', { what: 'automatic failover and fencing are on again' });
  }

  private async decide(local: LocalState, view: ClusterView): Promise<void> {
    const m = this.m;
    if (m.handedOver) return; // shutting down after a switchover
    if (this.nameTaken(view)) return;
    const duty = dutyOf(view, { name: m.name, recovery: local.recovery, sysid: local.sysid }, m.lease?.id ?? null, m.s.scope);
    if (duty.kind === 'initialize') {
      if (await m.dcs.initialize(local.sysid)) m.log.event('initialized', { sysid: local.sysid });
      return;
    }
    if (duty.kind === 'foreign') {
      m.configError = duty.why;
      m.fence.close(duty.why);
      m.log.note(duty.why, 'warning');
      return;
    }
    m.configError = null;
    if (duty.kind === 'lead') {
      await lead(m, local, view);
      return;
    }
    if (duty.kind === 'wait') {
      if (m.leading) m.loseLeadership('the leader key is not held under this process\'s lease');
      if (!local.recovery) m.fence.close('this member does not hold the leader key under its own lease');
      m.log.note(duty.why, 'warning');
      return;
    }
    if (duty.kind === 'follow') {
      if (await this.expireLeader(duty.leader)) return;
      m.leaderGoneAt = 0;
      if (m.leading) m.loseLeadership(`member "${duty.leader}" holds the leader key`);
      m.fence.close(`member "${duty.leader}" leads the cluster`);
      await m.follower.step(local, view, duty.leader);
      return;
    }
    if (m.leaderGoneAt === 0) m.leaderGoneAt = Date.now();
    if (m.leading) m.loseLeadership('the leader key is gone');
    await election(m, local, view);
  }

  /**
   * Delete the leader key once its lease ran out as this member sees it
   * (expiry.ts; not in maintenance mode); true when deleted: the election
   * follows at once.
   */
  private async expireLeader(leader: string): Promise<boolean> {
    const m = this.m;
    const due = m.paused ? null : m.expiry.due();
    if (!due) return false;
    if (!(await m.dcs.expireLeader(leader, due.lease, due.statusRev))) return false;
    m.log.event(
      'leader_expired',
      { leader, lease: due.lease, leaseTtlMs: due.ttlMs, silentMs: due.silentMs, what: `member "${leader}" did not renew its leader key for its lease's TTL (${due.ttlMs} ms): deleted it (its fence closed ${fenceMarginMs(due.ttlMs)} ms before)` },
      'warning',
    );
    m.expiry.observe(null, null);
    this.trigger(`member "${leader}"'s leader key expired`);
    return true;
  }

  /**
   * Ask etcd the TTL it granted to the leader's lease, once per lease: the
   * other members count it, not their own `ttl` (expiry.ts). Not answered:
   * asked again next loop, and meanwhile nothing is due.
   */
  private async askLeaseTtl(): Promise<void> {
    const m = this.m;
    const lease = m.expiry.leaseToAsk();
    if (lease === null || lease === m.lease?.id) return;
    const ttl = await m.dcs.leaseTtl(lease).catch(() => null);
    if (ttl !== null) m.expiry.leaseTtl(lease, ttl * 1000);
  }

  /** Run the loop when the leader's lease runs out as this member sees it, if that is before the next loop. */
  private scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    const m = this.m;
    const due = m.expiry.dueInMs();
    if (due === null || m.leading || m.paused || due > m.t.loopWaitMs) return;
    this.expiryTimer = setTimeout(() => this.trigger('the leader\'s lease runs out now'), Math.max(0, due) + 2);
  }

  /**
   * Whether another lease holds this member's key in etcd. A lease that is
   * not renewed expires within ttl: one that still holds the key after
   * 2 x ttl + retry_timeout is renewed by another live process with the
   * same name, and this member then refuses cluster duty for good (a
   * configuration error) rather than share a name, which would let both
   * servers believe they lead.
   */
  private nameTaken(view: ClusterView): boolean {
    const m = this.m;
    if (this.nameRefused) return true;
    const held = view.members.get(m.name);
    if (!held || held.lease === m.lease?.id) {
      this.nameHeld = null;
      return false;
    }
    if (this.nameHeld?.lease !== held.lease) this.nameHeld = { lease: held.lease, since: performance.now() };
    m.fence.close('this member\'s name is held in etcd by another lease');
    const waited = performance.now() - this.nameHeld.since;
    if (waited < 2 * m.t.ttlMs + m.t.retryTimeoutMs) {
      m.log.note(`member key "${m.name}" is held by lease ${held.lease}, not this process's: waiting for it to expire (this server's previous run) before taking part`);
      return true;
    }
    this.nameRefused = true;
    m.configError = `another live member registers the name "${m.name}" in etcd (conninfo ${JSON.stringify(held.conninfo)}, lease ${held.lease}): member names must be unique in a cluster; set a distinct tsworker_promoter.name on this server (after pg_basebackup, edit the copied setting) and restart it; this member takes part in nothing`;
    m.log.event('name_conflict', { error: m.configError }, 'warning');
    if (m.leading) m.loseLeadership('another live member uses this member\'s name');
    return true;
  }
}
