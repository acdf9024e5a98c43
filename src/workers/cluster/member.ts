/**
 * Cluster mode of the built-in promoter: one member of a cluster of N
 * servers whose leader holds a lease in etcd (docs/failover.md, "Cluster
 * mode"). Its loop follows Patroni's `Ha.run_cycle`:
 *
 *   every loop_wait (and at once when the leader key changes):
 *     read this server's state (SPI), renew this member's lease, read the cluster;
 *     holds the leader key  -> confirm it (compare on name and lease: only a lease this
 *                              process granted counts, never the name alone), open the write
 *                              fence until shortly before the lease could expire,
 *                              promote if still a standby, keep the synchronous set;
 *     another member leads  -> close the fence; follow it (re-point primary_conninfo),
 *                              or say that this server needs a restart or pg_rewind;
 *     nobody leads          -> election: only the most advanced eligible member takes
 *                              the key (atomic create), then promotes;
 *     an operator's request -> switchover (handover.ts) on the leader and its candidate;
 *                              manual failover on the member it names;
 *     paused (maintenance)  -> no election and no fencing for lack of etcd;
 *     publish members/<name> and the status.
 *
 * Writes are allowed only while the fence is open (native/shim/fence.c):
 * it closes by itself when the lease is not renewed, so a leader cut off
 * from etcd stops accepting writes before any other member can take the
 * key.
 */
import { performance } from 'perf_hooks';

import type { WorkerContext } from '../../runtime/index';
import { storeEvents, type StoredEvent } from '../events';
import { promoteAndWait } from '../promote';
import { Trigger } from '../trigger';
import { beforePromote, onPromote, type PromotionEvent } from '../promoter/hooks';
import { HealthApi, apiStateOf, type ApiState } from './api';
import { citusPart, type CitusMember } from './citus';
import { citusConfigErrors, type CitusSettings } from './citus-settings';
import { Dcs, DcsError, LeaseLostError, type ClusterView, type FailoverRequest, type Lease, type MemberData } from './dcs';
import { dutyOf } from './duty';
import { elect, type Candidate } from './election';
import { WriteFence } from './fence';
import { awaitCaller, awaitOldLeader, leadSwitchover, pending, shutDownServer, type HandoverHost } from './handover';
import { Follower } from './follow';
import { numberToLsn, readHistoryLine, readLocal, readReplicas, type LocalState } from './local';
import { askMembers } from './peers';
import { clusterPrefix, configErrors, memberName, parseHosts, timing, type ClusterSettings, type Timing } from './settings';
import { STRICT_PLACEHOLDER, SyncManager, setStandbyNames, standbyNames } from './sync';

/** The promoter's settings that cluster mode reads. */
export type MemberSettings = ClusterSettings & CitusSettings & { before_promote: string; on_promote: string };
type Ctx = WorkerContext<any> & { settings: MemberSettings };

const MAX_EVENTS = 200;
const VERSION = '0.1.0';

export class ClusterMember {
  readonly name: string;
  private t: Timing;
  private readonly dcs: Dcs;
  private readonly fence: WriteFence;
  private readonly sync: SyncManager;
  private lease: Lease | null = null;
  /** performance.now() at which the last successful renewal of the lease was sent. */
  private renewedAt = 0;
  private view: ClusterView | null = null;
  private viewAt: number | null = null;
  private leading = false;
  private local: LocalState | null = null;
  private timelineSeen = 0;
  private readonly follower: Follower;
  private readonly citus: CitusMember | null;
  private dcsError: string | null = null;
  private configError: string | null = null;
  private leaderGoneAt = 0;
  private readonly unstored: StoredEvent[] = [];
  private lastEvent: string | null = null;
  private lastNote = '';
  private api: HealthApi | null = null;
  private apiListen = '';
  private apiState: ApiState | null = null;
  private lastLoopAt = performance.now();
  private unwatch: (() => void) | null = null;
  private readonly trig = new Trigger();
  private postmasterGone = false;
  private readonly serverVersion: number;
  private readonly postmasterStart: string;
  /** Maintenance mode as last read from etcd's `config`. */
  private paused = false;
  /** This server is shutting down after handing the leader key over. */
  private handedOver = false;
  /** Another lease holds this member's key in etcd: which one, since when (performance.now()). */
  private nameHeld: { lease: string; since: number } | null = null;
  /** Another live process uses this member's name: no cluster duty until a restart. */
  private nameRefused = false;

  constructor(private readonly w: Ctx) {
    const s = w.settings;
    this.name = memberName(s.name, w.setting('cluster_name'));
    this.t = timing(s);
    let hosts: string[] = [];
    try {
      hosts = parseHosts(s.etcd_hosts);
    } catch {
      // reported by configErrors()
    }
    this.dcs = new Dcs(hosts, clusterPrefix(s.namespace, s.scope, s.citus_group), this.t.retryTimeoutMs);
    this.citus = citusPart(w, this.name, s, hosts, () => this.t, (kind, detail, level) => this.event(kind, detail, level));
    this.fence = new WriteFence((open, reason) => this.fenceChanged(open, reason));
    this.follower = new Follower(w, this.name, (kind, detail, level) => this.event(kind, detail, level), () => this.t.retryTimeoutMs);
    this.sync = new SyncManager(w, this.dcs, this.name, (kind, detail) => this.event(kind, detail), () => this.t.retryTimeoutMs);
    const row = w.query<{ v: number; t: string }>(
      `SELECT current_setting('server_version_num')::int AS v, pg_postmaster_start_time()::text AS t`,
    )[0];
    this.serverVersion = row.v;
    this.postmasterStart = row.t;
  }

  private get s(): MemberSettings {
    return this.w.settings;
  }

  // ------------------------------------------------------------ events, status

  private event(kind: string, detail: Record<string, unknown>, level: 'info' | 'warning' = 'info'): void {
    const e: StoredEvent = { at: new Date().toISOString(), kind, detail: JSON.parse(JSON.stringify({ member: this.name, ...detail })) };
    this.unstored.push(e);
    if (this.unstored.length > MAX_EVENTS) this.unstored.shift();
    this.lastEvent = kind;
    this.w.log[level](`${kind}: ${JSON.stringify(detail)}`);
  }

  /** Log a repeated condition once, until it changes. */
  private note(text: string, level: 'info' | 'warning' = 'info'): void {
    if (text === this.lastNote) return;
    this.lastNote = text;
    this.w.log[level](text);
  }

  /** Store the events not yet in tsworker.events (on the leader, while it accepts writes). */
  private storeEvents(): void {
    if (this.unstored.length === 0 || !this.fence.open || !this.local || this.local.recovery) return;
    try {
      storeEvents(this.w, this.unstored);
      this.unstored.length = 0;
    } catch (err) {
      this.note(`could not store events: ${(err as Error).message}`, 'warning');
    }
  }

  private fenceChanged(open: boolean, reason: string | null): void {
    if (open) {
      this.event('unfenced', { reason: 'this member holds the leader lease: writes are accepted' });
    } else if (this.local && !this.local.recovery) {
      this.event('fenced', { reason }, 'warning');
    }
  }

  private publishStatus(): void {
    const l = this.local;
    const status = {
      mode: 'cluster',
      ...(this.citus ? { citus: this.citus.status() } : {}),
      member: this.name,
      scope: this.s.scope,
      role: l ? (l.recovery ? 'standby' : 'primary') : null,
      leader: this.view?.leader?.name ?? null,
      timeline: l?.timeline ?? null,
      lsn: l?.lsn != null ? numberToLsn(l.lsn) : null,
      fenced: l && !l.recovery ? !this.fence.open : null,
      fence: l && !l.recovery ? this.fence.reason : null,
      following: this.follower.following,
      needs: this.follower.needs,
      dcs: this.dcsError ? `error: ${this.dcsError}`.slice(0, 300) : 'ok',
      sync: this.view?.sync?.members ?? null,
      paused: this.paused,
      switchover: this.view?.failover ? { id: this.view.failover.id, kind: this.view.failover.kind, to: this.view.failover.member, state: this.view.failover.state } : null,
      error: this.configError,
      lastEvent: this.lastEvent,
    };
    try {
      this.w.status.set(status);
    } catch {
      this.w.status.set({ ...status, dcs: 'error', fence: status.fence?.slice(0, 200) ?? null });
    }
  }

  // ------------------------------------------------------------ the loop

  /** Run the next loop at once. */
  trigger(why: string): void {
    this.trig.fire(why);
  }

  /** Apply changed settings (a reload). */
  reload(): void {
    const t = timing(this.s);
    if (t.adjusted && t.adjusted !== this.t.adjusted) this.w.log.warning(t.adjusted);
    this.t = t;
    this.dcs.setTimeout(t.retryTimeoutMs);
    this.trigger('configuration reloaded');
  }

  async run(): Promise<void> {
    const errors = [...configErrors(this.s), ...citusConfigErrors(this.s, this.w.setting('shared_preload_libraries') ?? '')];
    if (!WriteFence.managed()) errors.push('cluster mode was not on when the server started (tsworker_promoter.etcd_hosts needs a restart), so writes are not fenced');
    if (errors.length > 0) {
      this.configError = errors.join('; ');
      this.w.log.warning(`cluster mode cannot run: ${this.configError}`);
      this.publishStatus();
      while (await this.w.wait()) this.publishStatus();
      return;
    }
    if (this.t.adjusted) this.w.log.warning(this.t.adjusted);
    this.w.log.log(
      `cluster mode: member "${this.name}" of "${this.s.scope}" (etcd ${this.s.etcd_hosts}, ttl ${this.s.ttl} s, loop_wait ${this.t.loopWaitMs} ms, retry_timeout ${this.t.retryTimeoutMs} ms; writes stop ${this.t.fenceMarginMs} ms before the lease can expire)`,
    );
    this.w.on('postmasterDeath', () => this.postmasterDied());
    await this.startApi();
    let next = performance.now();
    try {
      for (;;) {
        if (!(await this.trig.pause(this.w, next - performance.now()))) break;
        const why = this.trig.take();
        if (why) this.w.log.debug(`running the cluster loop at once: ${why}`);
        next = performance.now() + this.t.loopWaitMs;
        await this.cycle();
        this.lastLoopAt = performance.now();
        if (this.apiListen !== this.s.restapi_listen) await this.startApi();
      }
    } finally {
      await this.stopping();
    }
  }

  private async startApi(): Promise<void> {
    this.api?.close();
    this.api = null;
    this.apiListen = this.s.restapi_listen;
    if (!this.apiListen) return;
    const api = new HealthApi(() => this.apiState, () => this.fence.open, VERSION, this.citus ? (p, b) => this.citus!.handlePost(p, b) : undefined);
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
    this.unwatch?.();
    this.api?.close();
    this.fence.stop();
    if (this.postmasterGone) return; // postmasterDied() revokes the lease, then closes the client
    if (this.lease && !this.leading) await this.dcs.revokeLease(this.lease.id).catch(() => undefined);
    await this.citus?.close();
    this.dcs.close();
  }

  /** The postmaster is gone: writes stop, and the leader key goes at once (revoking the lease deletes it). */
  private async postmasterDied(): Promise<void> {
    this.postmasterGone = true;
    this.fence.close('the postmaster is gone');
    if (!this.lease) return;
    try {
      await this.dcs.revokeLease(this.lease.id);
      if (this.leading) this.w.log.log('the postmaster is gone: released the leader key');
    } catch (err) {
      this.w.log.warning(`the postmaster is gone, and the lease could not be revoked: ${(err as Error).message}`);
    } finally {
      this.dcs.close();
    }
  }

  private async ensureWatch(): Promise<void> {
    if (this.unwatch) return;
    try {
      this.unwatch = await this.dcs.watchLeader((what, value, key) => {
        if (key === 'failover') {
          this.trigger(`an operator's request was ${what === 'delete' ? 'deleted' : 'posted or updated'}`);
          return;
        }
        // in maintenance mode a deleted key does not fence (another member taking it does)
        if (this.leading && ((what === 'delete' && !this.paused) || (what === 'put' && value !== this.name))) {
          this.fence.close(what === 'delete' ? 'the leader key was deleted' : `member "${value}" took the leader key`);
        }
        this.trigger(`the leader key was ${what === 'delete' ? 'deleted' : `set to "${value}"`}`);
      });
    } catch {
      // etcd unreachable: the loop tries again
    }
  }

  /**
   * Renew this member's lease; grant a new lease when there is none or etcd
   * no longer knows it. Never another lease, even one whose key holds this
   * member's name: that may be another server with the same name.
   */
  private async renewLease(): Promise<void> {
    if (this.lease) {
      const sent = performance.now();
      try {
        this.lease.ttl = await this.dcs.keepAlive(this.lease.id);
        this.renewedAt = sent;
        return;
      } catch (err) {
        if (!(err instanceof LeaseLostError)) throw err;
        this.lease = null;
        if (this.leading) this.loseLeadership('the leader lease expired');
      }
    }
    const sent = performance.now();
    this.lease = await this.dcs.grantLease(this.s.ttl);
    this.renewedAt = sent;
  }

  private async cycle(): Promise<void> {
    const local = readLocal(this.w);
    this.local = local;
    if (!local.recovery) this.timelineSeen = local.timeline;
    else {
      // without a WAL receiver a standby's timeline reads as its last restartpoint's: keep the one it streamed on
      if (local.receiver === 'streaming') this.timelineSeen = Math.max(this.timelineSeen, local.timeline);
      local.timeline = Math.max(local.timeline, this.timelineSeen);
    }
    try {
      let view: ClusterView;
      if (this.lease) {
        await this.renewLease();
        view = await this.dcs.read();
      } else {
        view = await this.dcs.read();
        await this.renewLease();
      }
      this.view = view;
      this.viewAt = Date.now();
      this.notePause(view);
      if (this.dcsError) this.event('dcs_reachable', { after: this.dcsError });
      this.dcsError = null;
      await this.ensureWatch();
      await this.decide(local, view);
      // never over the key of another process with this name (nameTaken())
      if (!this.nameHeld && !this.nameRefused) await this.publishMember(local);
      await this.citus?.heartbeat(this.leading && this.fence.open && this.local?.recovery === false);
    } catch (err) {
      const msg = (err as Error).message;
      if (!(err instanceof DcsError)) {
        this.w.log.warning(`the cluster loop failed: ${(err as Error).stack ?? msg}`);
      } else {
        if (!this.dcsError) this.event('dcs_unreachable', { error: msg, leading: this.leading }, 'warning');
        this.dcsError = msg;
        if (this.leading && this.paused && !local.recovery) {
          // maintenance mode: no fencing for lack of etcd (Patroni's pause)
          this.fence.openUntilTime(performance.now() + this.t.ttlMs, 'maintenance mode ended while etcd was unreachable');
          this.note(`etcd unreachable (${msg}); maintenance mode: writes go on`, 'warning');
        } else if (this.leading) {
          this.note(`etcd unreachable (${msg}): writes stop when the leader lease runs out (${this.fence.remainingMs} ms)`, 'warning');
        }
      }
    }
    this.storeEvents();
    this.publishStatus();
    this.apiState = this.buildApiState(local);
  }

  private notePause(view: ClusterView): void {
    const paused = view.config?.pause === true;
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) this.event('paused', { at: view.config?.paused_at ?? null, by: view.config?.paused_by ?? null, what: 'maintenance mode: no automatic failover, no fencing for lack of etcd' });
    else this.event('resumed', { what: 'automatic failover and fencing are on again' });
  }

  /** What a switchover needs from this member (handover.ts). */
  private handoverHost(): HandoverHost {
    return {
      name: this.name,
      w: this.w,
      dcs: this.dcs,
      keep: async (reopen) => {
        await this.renewLease();
        if (reopen && this.leading) this.openFence();
      },
      closeFence: (reason) => this.fence.close(reason),
      beforeDemote: async () => this.citus?.beforeDemote(),
      leaseId: () => this.lease!.id,
      loopWaitMs: () => this.t.loopWaitMs,
      retryTimeoutMs: () => this.t.retryTimeoutMs,
      maxLagBytes: () => this.s.maximum_lag_on_failover * 1024,
      event: (kind, detail, level) => this.event(kind, detail, level),
    };
  }

  private async decide(local: LocalState, view: ClusterView): Promise<void> {
    if (this.handedOver) return; // shutting down after a switchover
    if (this.nameTaken(view)) return;
    const duty = dutyOf(view, { name: this.name, recovery: local.recovery, sysid: local.sysid }, this.lease?.id ?? null, this.s.scope);
    if (duty.kind === 'initialize') {
      if (await this.dcs.initialize(local.sysid)) this.event('initialized', { sysid: local.sysid });
      return;
    }
    if (duty.kind === 'foreign') {
      this.configError = duty.why;
      this.fence.close(duty.why);
      this.note(duty.why, 'warning');
      return;
    }
    this.configError = null;
    if (duty.kind === 'lead') {
      await this.lead(local, view);
      return;
    }
    if (duty.kind === 'wait') {
      if (this.leading) this.loseLeadership('the leader key is not held under this process\'s lease');
      if (!local.recovery) this.fence.close('this member does not hold the leader key under its own lease');
      this.note(duty.why, 'warning');
      return;
    }
    if (duty.kind === 'follow') {
      this.leaderGoneAt = 0;
      await this.follow(local, view, duty.leader);
      return;
    }
    if (this.leaderGoneAt === 0) this.leaderGoneAt = Date.now();
    if (this.leading) this.loseLeadership('the leader key is gone');
    await this.election(local, view);
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
    if (this.nameRefused) return true;
    const m = view.members.get(this.name);
    if (!m || m.lease === this.lease?.id) {
      this.nameHeld = null;
      return false;
    }
    if (this.nameHeld?.lease !== m.lease) this.nameHeld = { lease: m.lease, since: performance.now() };
    this.fence.close('this member\'s name is held in etcd by another lease');
    const waited = performance.now() - this.nameHeld.since;
    if (waited < 2 * this.t.ttlMs + this.t.retryTimeoutMs) {
      this.note(`member key "${this.name}" is held by lease ${m.lease}, not this process's: waiting for it to expire (this server's previous run) before taking part`);
      return true;
    }
    this.nameRefused = true;
    this.configError = `another live member registers the name "${this.name}" in etcd (conninfo ${JSON.stringify(m.conninfo)}, lease ${m.lease}): member names must be unique in a cluster; set a distinct tsworker_promoter.name on this server (after pg_basebackup, edit the copied setting) and restart it; this member takes part in nothing`;
    this.event('name_conflict', { error: this.configError }, 'warning');
    if (this.leading) this.loseLeadership('another live member uses this member\'s name');
    return true;
  }

  // ------------------------------------------------------------ leader

  private openFence(): void {
    if (!this.lease) return;
    this.fence.openUntilTime(
      this.renewedAt + this.lease.ttl * 1000 - this.t.fenceMarginMs,
      'the leader lease was not renewed in time (etcd unreachable or too slow)',
    );
  }

  private loseLeadership(why: string): void {
    this.leading = false;
    this.fence.close(why);
    this.event('leader_lost', { reason: why }, 'warning');
  }

  private async lead(local: LocalState, view: ClusterView): Promise<void> {
    if (!(await this.dcs.updateLeader(this.name, this.lease!.id, { optime: local.lsn ?? 0, timeline: local.timeline }))) {
      this.loseLeadership('the leader key is no longer this member\'s');
      return;
    }
    if (!this.leading) {
      this.leading = true;
      this.event('leader_confirmed', { lease: this.lease!.id });
    }
    this.openFence();
    this.follower.reset();
    const req = view.failover;
    if (local.recovery) {
      if (req && req.kind === 'switchover' && req.state === 'handed_over' && req.member === this.name) {
        const how = await awaitOldLeader(this.handoverHost(), req);
        this.w.log.log(`switchover from "${req.leader}": ${how}`);
        await this.citus?.beforePromote();
        await this.promote(local, view, `switchover from member "${req.leader}" (requested on "${req.requested_by}")`, undefined, req);
        return;
      }
      await this.promote(local, view, 'this member holds the leader key but is a standby');
      return;
    }
    if (pending(req, 'switchover') && (req.leader === null || req.leader === this.name) && req.member !== this.name) {
      const outcome = await leadSwitchover(this.handoverHost(), req as FailoverRequest & { lease: string }, view, local);
      if (outcome === 'handed_over') {
        this.leading = false;
        this.handedOver = true;
        if (req.requested_by === this.name && req.pid) await awaitCaller(this.w, req.pid);
        this.w.log.log(`switchover: member "${req.member}" holds the leader key; shutting this server down (fast): started again, it follows "${req.member}"`);
        // if the server cannot be shut down from here, it stays fenced and says it needs a restart
        if (!shutDownServer(this.w)) this.handedOver = false;
        return;
      }
      if (outcome === 'lost') this.loseLeadership('the leader key was lost during a switchover');
      return;
    }
    await this.keepSync(local, view);
  }

  private async keepSync(local: LocalState, view: ClusterView): Promise<void> {
    if (!this.s.synchronous_mode && !view.sync) return;
    const replicas = readReplicas(this.w);
    const healthy = replicas
      .filter((r) => r.state === 'streaming')
      .filter((r) => {
        const m = view.members.get(r.name);
        return m && !m.nosync && !m.nofailover && m.sysid === local.sysid && m.priority > 0;
      })
      .map((r) => r.name);
    await this.sync.step(this.s, view, local.synchronousStandbyNames, replicas, healthy, local.lsn ?? 0);
  }

  // ------------------------------------------------------------ election and promotion

  private async election(local: LocalState, view: ClusterView): Promise<void> {
    const me: Candidate = {
      name: this.name,
      lsn: local.lsn,
      timeline: local.timeline,
      priority: this.s.priority,
      nofailover: this.s.nofailover,
      sysid: local.sysid,
      recovery: local.recovery,
      writable: false,
      source: 'self',
    };
    const clusterTimeline = Math.max(view.status?.timeline ?? 0, ...view.history.map((h) => h[0] + 1)) || null;
    const manual = pending(view.failover, 'failover') ? view.failover : null;
    if (manual && manual.member !== this.name) {
      this.note(`no leader: a manual failover to member "${manual.member}" was requested: not taking the leader key`);
      return;
    }
    if (manual) {
      await this.manualFailover(local, view, manual);
      return;
    }
    if (this.paused && local.recovery) {
      this.note('no leader: maintenance mode (paused): no automatic failover; tsworker.resume() or tsworker.failover() ends it');
      return;
    }
    const peers = await askMembers(view, this.name, this.t.retryTimeoutMs);
    // A member alive in etcd that did not answer may hold more WAL than it published: wait for it,
    // for one ttl after the leader went; then go by what it published (it may be cut off from here only).
    const silent = peers.filter((p) => p.source === 'etcd' && !p.nofailover && p.priority > 0);
    if (silent.length > 0 && Date.now() - this.leaderGoneAt < this.t.ttlMs) {
      this.note(`no leader: waiting for ${silent.map((p) => `"${p.name}"`).join(', ')} to answer before comparing WAL positions`);
      return;
    }
    const verdict = elect({
      me,
      peers,
      initialize: view.initialize,
      clusterTimeline,
      leaderOptime: view.status?.optime ?? null,
      maxLagBytes: this.s.maximum_lag_on_failover * 1024,
      // synchronous_mode off: a sync key left from when it was on binds nobody
      sync: this.s.synchronous_mode && view.sync && view.sync.leader ? view.sync : null,
    });
    if (!verdict.take) {
      this.note(`no leader: not taking the leader key: ${verdict.why}`);
      return;
    }
    const ev: PromotionEvent = {
      kind: 'promotion',
      worker: this.w.name,
      oldPrimary: view.sync?.leader ?? view.history[view.history.length - 1]?.[4] ?? '(unknown)',
      reason: verdict.why,
      failures: 0,
      lsn: local.lsn !== null ? numberToLsn(local.lsn) : null,
      newTimeline: null,
      durations: { detectionMs: Date.now() - this.leaderGoneAt },
      at: new Date().toISOString(),
    };
    if (local.recovery) {
      const veto = await beforePromote(this.s.before_promote, ev, 10_000);
      if (veto) {
        this.event('veto', { reason: veto }, 'warning');
        return;
      }
    }
    if (!(await this.takeKey(view, verdict.why, ev.lsn))) return;
    if (local.recovery) await this.promote(local, view, verdict.why, ev);
  }

  /** Take the leader key (atomic create) and open the fence; false when another member was first. */
  private async takeKey(view: ClusterView, why: string, lsn: string | null): Promise<boolean> {
    await this.renewLease();
    if (!(await this.dcs.acquireLeader(this.name, this.lease!.id))) {
      this.note('another member took the leader key first');
      return false;
    }
    this.leading = true;
    this.event('leader_acquired', { reason: why, lsn });
    this.openFence();
    return true;
  }

  /**
   * A manual failover to this member (tsworker.failover()): the operator
   * compared the members' WAL (and forced it, if another one held more);
   * only a primary that still accepts writes stops it.
   */
  private async manualFailover(local: LocalState, view: ClusterView, req: FailoverRequest & { lease: string }): Promise<void> {
    const peers = await askMembers(view, this.name, this.t.retryTimeoutMs);
    const live = peers.find((p) => p.source === 'direct' && !p.recovery && p.writable && p.sysid === local.sysid);
    if (live) {
      const reason = `member "${live.name}" is a primary that accepts writes: not failing over`;
      this.event('failover_refused', { id: req.id, reason }, 'warning');
      await this.dcs.updateFailover({ ...req, state: 'refused', reason }, req.lease).catch(() => false);
      return;
    }
    const why = `manual failover requested on "${req.requested_by}"${req.force ? ' (forced)' : ''}`;
    if (!(await this.takeKey(view, why, local.lsn !== null ? numberToLsn(local.lsn) : null))) return;
    if (local.recovery) await this.promote(local, view, why, undefined, req);
    else await this.dcs.updateFailover({ ...req, state: 'done', timeline: local.timeline, done_at: new Date().toISOString() }, req.lease).catch(() => false);
  }

  /** Give the key back after a promotion that did not happen. */
  private async abandon(why: string): Promise<void> {
    this.leading = false;
    this.fence.close(why);
    await this.dcs.deleteLeader(this.name).catch(() => undefined);
  }

  private async promote(local: LocalState, view: ClusterView, why: string, ev?: PromotionEvent, req?: FailoverRequest & { lease: string }): Promise<void> {
    if (this.s.synchronous_mode) {
      // nobody may take the key from this member until its own standbys are confirmed synchronous
      if (!(await this.dcs.writeSync({ leader: this.name, members: [], quorum: this.s.synchronous_node_count }, view.sync?.modRevision ?? null))) {
        await this.abandon('the synchronous state changed under this member');
        return;
      }
      await setStandbyNames(this.w, this.s.synchronous_mode_strict ? standbyNames(1, [STRICT_PLACEHOLDER]) : '', this.t.retryTimeoutMs);
    }
    this.event('promoting', { reason: why });
    // the lease is renewed while PostgreSQL promotes: a slow promotion must not cost the key
    const done = await promoteAndWait(this.w, 60_000, {
      everyMs: this.t.loopWaitMs,
      fn: async () => {
        await this.renewLease();
        if (this.leading) this.openFence();
      },
    });
    if (!done.ok) {
      this.event('promotion_failed', { reason: 'the server did not leave recovery within 60 s' }, 'warning');
      await this.abandon('the promotion failed');
      return;
    }
    const promoteMs = done.ms;
    const after = readLocal(this.w);
    this.local = after;
    this.timelineSeen = after.timeline;
    const line = readHistoryLine(this.w, after.timeline, this.name);
    this.event('promoted', {
      timeline: after.timeline,
      lsn: local.lsn !== null ? numberToLsn(local.lsn) : null,
      promoteMs,
      promoteRequests: done.requests,
      detectionMs: ev?.durations.detectionMs ?? null,
      reason: why,
    });
    if (line && req) line[2] = why;
    if (line) await this.dcs.appendHistory(line).catch((err: Error) => this.w.log.warning(`could not record the promotion in etcd's history: ${err.message}`));
    if (req) {
      const doneAt = new Date().toISOString();
      this.event(req.kind === 'switchover' ? 'switchover_done' : 'failover_done', {
        id: req.id,
        from: req.leader,
        requestedBy: req.requested_by,
        timeline: after.timeline,
        finalLsn: req.lsn !== undefined ? numberToLsn(req.lsn) : null,
        fencedAt: req.fenced_at ?? null,
        doneAt,
        force: req.force,
      });
      await this.dcs.updateFailover({ ...req, state: 'done', timeline: after.timeline, done_at: doneAt }, req.lease).catch(() => false);
    }
    await this.dcs.updateLeader(this.name, this.lease!.id, { optime: after.lsn ?? 0, timeline: after.timeline }).catch(() => false);
    this.storeEvents();
    if (ev && this.s.on_promote) {
      const done = { ...ev, newTimeline: after.timeline, durations: { ...ev.durations, promoteMs } };
      onPromote(this.s.on_promote, done, 60_000).then(
        (line2) => this.w.log.log(line2),
        (err: Error) => this.w.log.warning(`on_promote: ${err.message}`),
      );
    }
  }

  // ------------------------------------------------------------ follower

  private async follow(local: LocalState, view: ClusterView, leader: string): Promise<void> {
    if (this.leading) this.loseLeadership(`member "${leader}" holds the leader key`);
    this.fence.close(`member "${leader}" leads the cluster`);
    await this.follower.step(local, view, leader);
  }

  // ------------------------------------------------------------ publishing

  private async publishMember(local: LocalState): Promise<void> {
    if (!this.lease) return;
    const data: MemberData = {
      conninfo: this.s.conninfo,
      role: local.recovery ? 'replica' : 'primary',
      state: !local.recovery && !this.fence.open ? 'fenced' : 'running',
      timeline: local.timeline,
      lsn: local.lsn,
      replayed: local.replayed,
      streaming_from: local.sender,
      priority: this.s.priority,
      nofailover: this.s.nofailover,
      nosync: this.s.nosync,
      sysid: local.sysid,
      api_url: this.s.restapi_listen ? `http://${this.s.restapi_listen}/patroni` : null,
      at: new Date().toISOString(),
    };
    if (!(await this.dcs.touchMember(this.name, data, this.lease.id))) {
      this.note(`member key "${this.name}" is held by another lease: not published (see the next loop)`, 'warning');
    }
  }

  private buildApiState(local: LocalState): ApiState {
    return {
      ...apiStateOf(local, this.view, this.s),
      name: this.name,
      leader: this.leading,
      serverVersion: this.serverVersion,
      postmasterStartTime: this.postmasterStart,
      dcsLastSeen: this.viewAt !== null ? Math.floor(this.viewAt / 1000) : null,
      lastLoopAt: this.lastLoopAt,
      ttlMs: this.t.ttlMs,
    };
  }
}
