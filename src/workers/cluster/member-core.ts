/**
 * The state of one cluster member that its parts share: the loop
 * (member.ts), the leader's duties (leader.ts), the election and promotion
 * (takeover.ts) and the published status (status.ts). Owner of this
 * process's lease in etcd and of the `leading` flag: renewing the lease,
 * opening the write fence for it, and giving the leadership up happen only
 * here.
 *
 * Writes are allowed only while the fence is open (native/shim/fence.c):
 * it closes by itself when the lease is not renewed, so a leader cut off
 * from etcd stops accepting writes before any other member can take the
 * key.
 */
import { performance } from 'perf_hooks';

import type { WorkerContext } from '../../runtime/index';
import { citusPart, type CitusMember } from './citus';
import type { CitusSettings } from './citus-settings';
import { Dcs, DcsError, LeaseLostError } from './dcs';
import type { ClusterView, FailoverRequest, Lease } from './dcs-records';
import { LeaderExpiry } from './expiry';
import { WriteFence } from './fence';
import { Follower } from './follow';
import type { LocalState } from './local';
import { MemberLog } from './member-log';
import { clusterPrefix, fenceMarginMs, memberName, parseHosts, timing, type ClusterSettings, type Timing } from './settings';
import { SyncManager } from './sync';

/** The promoter's settings that cluster mode reads. */
export type MemberSettings = ClusterSettings & CitusSettings & { before_promote: string; on_promote: string };
export type MemberCtx = WorkerContext<any> & { settings: MemberSettings };

export class MemberCore {
  readonly name: string;
  t: Timing;
  readonly dcs: Dcs;
  readonly fence: WriteFence;
  readonly sync: SyncManager;
  readonly follower: Follower;
  readonly log: MemberLog;
  /** The Citus part (citus.ts), null outside a Citus formation. */
  readonly citus: CitusMember | null;
  lease: Lease | null = null;
  /** performance.now() at which the last successful renewal of the lease was sent. */
  private renewedAt = 0;
  /**
   * The send time of the last renewal that a write under the leader key
   * followed (`status`, or the key's creation): the only base of the write
   * fence (expiry.ts says why).
   */
  private confirmedAt = 0;
  /** The (lease, ttl) whose difference was last said (noteTtlChange). */
  private ttlNoted: string | null = null;
  /** When the leader's lease runs out as this member sees it. */
  readonly expiry: LeaderExpiry;
  view: ClusterView | null = null;
  viewAt: number | null = null;
  leading = false;
  local: LocalState | null = null;
  /** The highest timeline this server was seen on (a standby without a WAL receiver reads its restartpoint's). */
  timelineSeen = 0;
  dcsError: string | null = null;
  configError: string | null = null;
  /** What is wrong with tsworker_promoter.conninfo (reach.ts), null when it reaches this server or is not checked yet. */
  conninfoError: string | null = null;
  /** Date.now() when this member first saw no leader (0: a leader is known). */
  leaderGoneAt = 0;
  /**
   * performance.now() when etcd last dropped this member's own lease (0:
   * never). etcd then very likely dropped every member's (it was frozen,
   * or cut off from the members, longer than ttl): the election waits for
   * the others to publish again (takeover.ts).
   */
  leaseLostAt = 0;
  /** Maintenance mode as last read from etcd's `config`. */
  paused = false;
  /**
   * The switchover this leader runs, with its state as this member last
   * wrote it (handover.ts); shown in the status instead of the `failover`
   * key last read, until the next read of etcd.
   */
  running: FailoverRequest | null = null;
  /** performance.now() when the watch last saw `failover` deleted (a caller withdrew its request). */
  failoverDeletedAt = 0;
  /** This server is shutting down after handing the leader key over. */
  handedOver = false;
  readonly serverVersion: number;
  readonly postmasterStart: string;

  constructor(readonly w: MemberCtx) {
    const s = w.settings;
    this.name = memberName(s.name, w.setting('cluster_name'));
    this.t = timing(s);
    let hosts: string[] = [];
    try {
      hosts = parseHosts(s.etcd_hosts);
    } catch {
      // reported by configErrors()
    }
    this.log = new MemberLog(w, this.name);
    this.expiry = new LeaderExpiry(() => this.t.loopWaitMs + this.t.retryTimeoutMs);
    this.dcs = new Dcs(hosts, clusterPrefix(s.namespace, s.scope, s.citus_group), this.t.retryTimeoutMs);
    this.citus = citusPart(w, this.name, s, hosts, () => this.t, (kind, detail, level) => this.log.event(kind, detail, level));
    this.fence = new WriteFence((open, reason) => this.fenceChanged(open, reason));
    this.follower = new Follower(w, this.name, (kind, detail, level) => this.log.event(kind, detail, level), () => this.t.retryTimeoutMs);
    this.sync = new SyncManager(w, this.dcs, this.name, (kind, detail) => this.log.event(kind, detail), () => this.t.retryTimeoutMs);
    const row = w.query<{ v: number; t: string }>(
      `SELECT current_setting('server_version_num')::int AS v, pg_postmaster_start_time()::text AS t`,
    )[0];
    this.serverVersion = row.v;
    this.postmasterStart = row.t;
  }

  get s(): MemberSettings {
    return this.w.settings;
  }

  private fenceChanged(open: boolean, reason: string | null): void {
    if (open) {
      this.log.event('unfenced', { reason: 'this member holds the leader lease: writes are accepted' });
    } else if (this.local && !this.local.recovery) {
      this.log.event('fenced', { reason }, 'warning');
    }
  }

  /** Store the pending events, when this server is the leader and accepts writes. */
  storeEvents(): void {
    this.log.store(this.fence.open && !!this.local && !this.local.recovery);
  }

  /**
   * Renew this member's lease; grant a new lease when there is none or etcd
   * no longer knows it. Never another lease, even one whose key holds this
   * member's name: that may be another server with the same name.
   */
  async renewLease(): Promise<void> {
    if (this.lease) {
      const sent = performance.now();
      try {
        this.lease.ttl = await this.dcs.keepAlive(this.lease.id);
        this.renewedAt = sent;
        this.noteTtlChange();
        return;
      } catch (err) {
        if (!(err instanceof LeaseLostError)) throw err;
        this.lease = null;
        this.leaseLostAt = performance.now();
        if (this.leading) this.loseLeadership('the leader lease expired');
      }
    }
    const sent = performance.now();
    this.lease = await this.dcs.grantLease(this.s.ttl);
    this.renewedAt = sent;
    this.confirmedAt = 0; // nothing under a new lease is confirmed yet
  }

  /**
   * A `ttl` changed by a reload applies to the next lease this member is
   * granted (when it next takes the leader key, or after its lease was
   * lost): the lease it holds keeps the TTL etcd granted, which its fence
   * and the other members count. Said once per change.
   */
  private noteTtlChange(): void {
    if (!this.lease || this.lease.ttl === this.s.ttl) return;
    const key = `${this.lease.id}:${this.s.ttl}`;
    if (this.ttlNoted === key) return;
    this.ttlNoted = key;
    this.log.note(
      `ttl is ${this.s.ttl} s, but this member's lease ${this.lease.id} was granted ${this.lease.ttl} s: the lease keeps its TTL (its fence and the other members count it) and the new ttl applies to the next lease this member is granted`,
    );
  }

  /**
   * Renew the lease while leading outside the loop (a promotion, a
   * switchover's steps): renew, confirm the key with a `status` write, and
   * with `reopen` open the fence for it. Throws a DcsError when etcd does
   * not answer or the key is no longer this member's.
   */
  async keepLeading(reopen: boolean): Promise<void> {
    await this.renewLease();
    // the lease ran out (renewLease granted a new one, without the key): what the caller does for the leader stops
    if (!this.leading) throw new DcsError('this member lost the leader key (its lease expired)');
    if (!(await this.confirmLeader())) {
      this.loseLeadership('the leader key is no longer this member\'s');
      throw new DcsError('the leader key is no longer this member\'s');
    }
    if (reopen) this.openFence();
  }

  /**
   * Confirm that this member holds the leader key under its lease, and
   * publish the leader's position in `status` (the other members count the
   * lease's time from this write: expiry.ts). False when the key is not
   * this member's (any more).
   */
  async confirmLeader(): Promise<boolean> {
    if (!this.lease) return false;
    const base = this.renewedAt;
    const l = this.local;
    const status = { optime: l?.lsn ?? 0, timeline: l?.timeline ?? 0, leader: this.name, conninfo: this.s.conninfo };
    if (!(await this.dcs.updateLeader(this.name, this.lease.id, status))) return false;
    this.confirmedAt = Math.max(this.confirmedAt, base);
    return true;
  }

  /** This member has just created the leader key: the last renewal preceded that write. */
  acquired(): void {
    this.confirmedAt = this.renewedAt;
  }

  /**
   * Open the write fence until fence_margin before the lease could expire,
   * counted from the last renewal that a write under the leader key followed.
   */
  openFence(): void {
    if (!this.lease) return;
    // the lease's own TTL, as granted: `ttl` may have been changed since (a reload), and the other
    // members count this lease's TTL too (expiry.ts), not their own setting
    const leaseMs = this.lease.ttl * 1000;
    this.fence.openUntilTime(
      this.confirmedAt + leaseMs - fenceMarginMs(leaseMs),
      'the leader lease was not renewed in time (etcd unreachable or too slow)',
    );
  }

  loseLeadership(why: string): void {
    this.leading = false;
    this.fence.close(why);
    this.log.event('leader_lost', { reason: why }, 'warning');
  }

  /** Give the key back after a promotion that did not happen. */
  async abandon(why: string): Promise<void> {
    this.leading = false;
    this.fence.close(why);
    await this.dcs.deleteLeader(this.name).catch(() => undefined);
  }
}
