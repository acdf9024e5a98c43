/**
 * Built-in worker `promoter`: watches the primary from a hot standby and
 * promotes the standby when the primary is gone, or, in `witness` mode,
 * watches the primary for standbys to ask (docs/failover.md).
 *
 *   # on the standby
 *   shared_preload_libraries = 'pg_tsworker'
 *   tsworker.workers = 'promoter'
 *   tsworker_promoter.witnesses = 'host=10.0.0.3 dbname=postgres'
 *
 * A check connects to the primary (a kept connection) and reads its WAL
 * flush position within `timeout`. Only a primary that does not answer is a
 * failed check; the standby promotes after `failures` consecutive failed
 * checks (counted when at least half an interval apart), unless the primary
 * still streams WAL here, the primary's identity was never verified, the
 * standby lags more than `max_lag`, a majority of witnesses cannot be
 * reached or one of them still reaches the primary, or `before_promote`
 * vetoes.
 */
import { defineWorker, type WorkerContext } from '../runtime/index';
import { storeEvents, type StoredEvent } from './events';
import { promoteAndWait } from './promote';
import { Trigger } from './trigger';
import { PrimaryMonitor, identify, type CheckOutcome } from './promoter/check';
import { describeConninfo } from './promoter/conninfo';
import { beforePromote, onPromote, type PromotionEvent } from './promoter/hooks';
import { askWitness, parseWitnesses, type WitnessView } from './promoter/witness';
import { ClusterMember, type MemberSettings } from './cluster/member';
import { citusSettings } from './cluster/citus-settings';
import { clusterSettings } from './cluster/settings';

const settings = {
  mode: {
    type: 'enum',
    values: ['standby', 'witness'],
    default: 'standby',
    description: 'standby: promote this standby when its primary is gone; witness: only watch the primary for standbys to ask.',
  },
  primary_conninfo: { type: 'string', default: '', superuserOnly: true, description: 'Connection string of the primary to watch (default: this standby\'s primary_conninfo).' },
  interval: { type: 'int', default: 1000, min: 10, max: 3_600_000, unit: 'ms', description: 'Time between checks of the primary.' },
  timeout: { type: 'int', default: 1000, min: 10, max: 600_000, unit: 'ms', description: 'Connect and query timeout of a check.' },
  failures: { type: 'int', default: 3, min: 1, max: 1000, description: 'Consecutive failed checks before promotion.' },
  witnesses: { type: 'string', default: '', superuserOnly: true, description: 'Connection strings of witness servers, separated by ";".' },
  max_lag: { type: 'int', default: 16384, min: 0, unit: 'kB', description: 'Do not promote when the WAL received is this far behind the primary\'s last seen flush position.' },
  keep_connection: { type: 'bool', default: true, description: 'Keep the monitoring connection open between checks.' },
  before_promote: { type: 'string', default: '', description: 'Absolute path of a module whose default export may veto a promotion (return false).' },
  on_promote: { type: 'string', default: '', description: 'Command (or absolute path of a module) run once after a promotion, given the event as JSON.' },
  // cluster mode: N members, a leader lease in etcd (src/workers/cluster/)
  ...clusterSettings,
  // Citus formations in cluster mode (src/workers/cluster/citus*.ts, docs/citus.md)
  ...citusSettings,
} as const;

type Settings = typeof settings;
type Ctx = WorkerContext<Settings>;

const MAX_EVENTS = 200;

class Promoter {
  private failures = 0;
  private firstFailureAt = 0;
  private lastFailureAt = 0;
  private lastOkAt = 0;
  private lastFlushLsn: string | null = null;
  private identityOk = false;
  /** The conninfo whose identity was verified: another one must be verified again. */
  private identityFor = '';
  private configError: string | null = null;
  private lastNote = '';
  private readonly events: StoredEvent[] = [];
  private readonly monitor: PrimaryMonitor;
  private readonly trig = new Trigger();
  private readonly localSystemId: string;

  constructor(private readonly w: Ctx) {
    this.localSystemId = w.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')[0].id;
    this.monitor = new PrimaryMonitor(this.conninfo(), w.settings.timeout, w.settings.keep_connection, (why) => this.trigger(why));
  }

  /** The primary to watch: the setting, else this server's primary_conninfo. */
  conninfo(): string {
    return this.w.settings.primary_conninfo || this.w.setting('primary_conninfo') || '';
  }

  /** Run the next check at once. */
  trigger(why: string): void {
    this.trig.fire(why);
  }

  event(kind: string, detail: Record<string, unknown>, level: 'info' | 'warning' = 'info'): void {
    const e: StoredEvent = { at: new Date().toISOString(), kind, detail: JSON.parse(JSON.stringify(detail)) as StoredEvent['detail'] };
    this.events.push(e);
    if (this.events.length > MAX_EVENTS) this.events.shift();
    this.w.log[level](`${kind}: ${JSON.stringify(detail)}`);
  }

  /** Log a repeated condition once, until it changes. */
  note(text: string, level: 'info' | 'warning' = 'info'): void {
    if (text === this.lastNote) return;
    this.lastNote = text;
    this.w.log[level](text);
  }

  inRecovery(): boolean {
    return this.local().recovery;
  }

  /**
   * This server, in one statement: whether it is in recovery, and its WAL
   * receiver: `connected` while it streams from the primary (its end is the
   * "WAL stream dropped" event), `fresh` when it also received a message
   * within `timeout` (the primary is alive, whatever a check says). An idle
   * primary sends only keepalives, so `fresh` is often false while
   * `connected` holds.
   */
  local(): { recovery: boolean; connected: boolean; fresh: boolean } {
    const row = this.w.query<{ recovery: boolean; status: string | null; age_ms: number | null }>(
      `SELECT pg_is_in_recovery() AS recovery, r.status,
              (extract(epoch FROM now() - r.last_msg_receipt_time) * 1000)::float8 AS age_ms
         FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true`,
    )[0];
    const connected = row.status === 'streaming';
    return { recovery: row.recovery, connected, fresh: connected && row.age_ms !== null && row.age_ms <= this.w.settings.timeout };
  }

  publish(role: string, extra: Record<string, unknown> = {}): void {
    const s = this.w.settings;
    this.w.status.set({
      role,
      primary: describeConninfo(this.conninfo()),
      failures: this.failures,
      threshold: s.failures,
      lastContactAt: this.lastOkAt ? new Date(this.lastOkAt).toISOString() : null,
      identity: this.identityOk ? 'verified' : this.configError ? 'error' : 'unverified',
      error: this.configError,
      lastEvent: this.events.length ? `${this.events[this.events.length - 1].kind}` : null,
      ...(extra as Record<string, never>),
    });
  }

  /** Wait until `ms` pass, the latch is set, or a trigger fires; false once shutdown is asked. */
  pause(ms: number): Promise<boolean> {
    return this.trig.pause(this.w, ms);
  }

  /** Verify that the primary is this standby's cluster (IDENTIFY_SYSTEM); records its timeline. */
  async verifyIdentity(): Promise<boolean> {
    try {
      const id = await identify(this.conninfo(), this.w.settings.timeout);
      if (id.systemId !== this.localSystemId) {
        this.configError = `the primary's system identifier ${id.systemId} is not this standby's ${this.localSystemId}: primary_conninfo points at a different cluster`;
        if (this.identityOk || this.lastNote !== this.configError) this.event('identity_mismatch', { primary: id.systemId, standby: this.localSystemId }, 'warning');
        this.note(this.configError, 'warning');
        this.identityOk = false;
        return false;
      }
      if (!this.identityOk) this.event('identity_verified', { systemId: id.systemId, timeline: id.timeline, lsn: id.xlogpos });
      this.identityOk = true;
      this.identityFor = this.conninfo();
      this.configError = null;
      return true;
    } catch (err) {
      // Answering normal connections but not replication ones is a configuration error.
      const why = `could not verify the primary's identity over a replication connection: ${(err as Error).message}`;
      this.configError = why;
      this.note(why, 'warning');
      return false;
    }
  }

  async checkOnce(standby: boolean): Promise<void> {
    const s = this.w.settings;
    if (this.identityOk && this.identityFor !== this.conninfo()) {
      // primary_conninfo changed (a reload): trust nothing until verified again
      this.identityOk = false;
      this.lastFlushLsn = null;
      this.failures = 0;
      this.w.log.log(`the primary to watch is now ${describeConninfo(this.conninfo())}; its identity will be verified`);
    }
    this.monitor.configure(this.conninfo(), s.timeout);
    const outcome: CheckOutcome = this.conninfo()
      ? await this.monitor.check()
      : { kind: 'config', reason: 'no primary to watch: primary_conninfo and tsworker_promoter.primary_conninfo are empty' };
    const now = Date.now();
    if (outcome.kind === 'ok' || outcome.kind === 'busy') {
      if (outcome.kind === 'busy') this.note(`the primary answers but is busy, not a failure: ${outcome.reason}`);
      if (standby && outcome.kind === 'ok' && (!this.identityOk || this.failures > 0)) {
        if (!(await this.verifyIdentity())) return;
      }
      if (this.failures > 0) this.event('primary_answers', { afterFailures: this.failures, ms: now - this.firstFailureAt });
      this.failures = 0;
      this.firstFailureAt = 0;
      this.lastOkAt = now;
      if (outcome.kind === 'ok') {
        this.lastFlushLsn = outcome.flushLsn;
        this.configError = standby ? this.configError : null;
      }
      return;
    }
    if (outcome.kind === 'config') {
      this.configError = outcome.reason;
      this.note(`configuration error, not a failure: ${outcome.reason}`, 'warning');
      return;
    }
    if (standby && this.local().fresh) {
      this.note(`check failed (${outcome.reason}) but the primary still streams WAL here: not a failure`);
      return;
    }
    // A check right after the previous failed one (an event-driven check
    // just before a tick) is not another failure: failed checks count when
    // at least half an interval apart.
    if (this.failures > 0 && now - this.lastFailureAt < s.interval / 2) {
      this.w.log.debug(`check failed again ${now - this.lastFailureAt} ms after the previous one: not counted`);
      return;
    }
    if (this.failures === 0) this.firstFailureAt = now;
    this.lastFailureAt = now;
    this.failures++;
    this.event('check_failed', { failures: this.failures, threshold: s.failures, reason: outcome.reason }, 'warning');
  }

  /** Whether to promote now; logs and records why not. */
  async decide(): Promise<boolean> {
    const s = this.w.settings;
    const span = Date.now() - this.firstFailureAt;
    if (this.failures < s.failures) return false;
    if (!this.identityOk) {
      this.note(`the primary failed ${this.failures} checks, but its identity was never verified: not promoting`, 'warning');
      return false;
    }
    if (this.lastFlushLsn) {
      const lag = Number(
        this.w.query<{ lag: string | null }>(
          `SELECT pg_wal_lsn_diff($1::pg_lsn, greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()))::text AS lag`,
          [this.lastFlushLsn],
        )[0].lag ?? 0,
      );
      if (lag > s.max_lag * 1024) {
        const why = `standby is ${lag} bytes behind the primary's last seen flush position ${this.lastFlushLsn}, more than max_lag (${s.max_lag} kB)`;
        if (this.lastNote !== why) this.event('lag_guard', { lagBytes: lag, maxLagBytes: s.max_lag * 1024, primaryFlush: this.lastFlushLsn }, 'warning');
        this.note(why, 'warning');
        return false;
      }
    }
    const witnesses = parseWitnesses(s.witnesses);
    if (witnesses.length > 0) {
      const views: WitnessView[] = await Promise.all(witnesses.map((c) => askWitness(c, s.timeout)));
      const reached = views.filter((v) => v.reached);
      if (reached.length * 2 <= witnesses.length) {
        const why = `reached ${reached.length} of ${witnesses.length} witnesses, not a majority: not promoting (this standby may be the one cut off)`;
        if (this.lastNote !== why) this.event('no_witness_majority', { views }, 'warning');
        this.note(why, 'warning');
        return false;
      }
      const seen = reached.filter((v) => (v.sinceContactMs ?? Infinity) < span || (v.failures ?? 0) === 0);
      if (seen.length > 0) {
        const why = `witness ${seen[0].witness} reached the primary ${Math.round(seen[0].sinceContactMs ?? 0)} ms ago: not promoting`;
        if (this.lastNote !== why) this.event('witness_sees_primary', { views }, 'warning');
        this.note(why, 'warning');
        return false;
      }
    }
    return true;
  }

  pending(): PromotionEvent {
    return {
      kind: 'promotion',
      worker: this.w.name,
      oldPrimary: describeConninfo(this.conninfo()),
      reason: `${this.failures} consecutive failed checks`,
      failures: this.failures,
      lsn: this.w.query<{ lsn: string | null }>('SELECT pg_last_wal_receive_lsn()::text AS lsn')[0].lsn,
      newTimeline: null,
      durations: { detectionMs: Date.now() - this.firstFailureAt },
      at: new Date().toISOString(),
    };
  }

  /** Promote (promote.ts: requested again until done), then prove the server accepts writes; stores and sends the events. */
  async promote(ev: PromotionEvent): Promise<boolean> {
    const done = await promoteAndWait(this.w, 60_000);
    ev.durations.promoteMs = done.ms;
    if (!done.ok || this.inRecovery()) {
      this.event('promotion_failed', { ...ev, reason: 'pg_promote did not finish within 60 s' }, 'warning');
      return false;
    }
    ev.newTimeline = parseInt(this.w.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')[0].f.slice(0, 8), 16);
    this.event('promoted', { ...ev });
    this.monitor.close();
    this.store();
    return true;
  }

  /** Store the events in tsworker.events and send them with NOTIFY (a write: proves the promotion; never waits for a standby). */
  store(): void {
    storeEvents(this.w, this.events);
  }

  /** Standby mode: checks, decisions, promotion. Returns once promoted or asked to stop. */
  async watch(): Promise<void> {
    const s = () => this.w.settings;
    if (parseWitnesses(s().witnesses).length === 0) {
      this.w.log.warning(
        'no witnesses configured (tsworker_promoter.witnesses): a network partition between this standby and a live primary can lead to two primaries (split brain)',
      );
    }
    let nextTick = Date.now();
    let streaming = this.local().connected;
    const STEP = 50;
    for (;;) {
      if (!(await this.pause(Math.min(STEP, nextTick - Date.now())))) return;
      const here = this.local();
      if (!here.recovery) {
        this.event('not_in_recovery', { reason: 'this server was promoted by someone else' });
        return;
      }
      const nowStreaming = here.connected;
      if (streaming && !nowStreaming) this.trigger('the WAL stream from the primary dropped');
      streaming = nowStreaming;
      const now = Date.now();
      const why = this.trig.pending;
      if (!why && now < nextTick) continue;
      this.trig.pending = null;
      if (why) this.w.log.log(`checking the primary at once: ${why}`);
      else nextTick = Math.max(nextTick + s().interval, now);
      await this.checkOnce(true);
      this.publish('standby');
      if (this.failures === 0 || !(await this.decide())) continue;
      const ev = this.pending();
      const veto = await beforePromote(s().before_promote, ev, 10_000);
      if (veto) {
        this.event('veto', { reason: veto }, 'warning');
        continue;
      }
      this.event('promoting', { reason: ev.reason, detectionMs: ev.durations.detectionMs });
      if (await this.promote(ev)) {
        this.publish('primary', { promotedAt: new Date().toISOString(), timeline: ev.newTimeline });
        if (s().on_promote) {
          try {
            this.w.log.log(await onPromote(s().on_promote, ev, 60_000));
          } catch (err) {
            this.w.log.warning(`on_promote: ${(err as Error).message}`);
          }
        }
        return;
      }
    }
  }

  /** Witness mode: check the primary on schedule and publish when it was last reached. */
  async witness(): Promise<void> {
    let nextTick = Date.now();
    for (;;) {
      if (!(await this.pause(nextTick - Date.now()))) return;
      nextTick = Math.max(nextTick + this.w.settings.interval, Date.now());
      await this.checkOnce(false);
      this.publish('witness');
    }
  }

  close(): void {
    this.monitor.close();
  }
}

export default defineWorker({
  name: 'promoter',
  start: 'standby',
  restart: 'always',
  backoffMax: 10_000,
  settings,
  async main(w) {
    if (w.settings.etcd_hosts) {
      const member = new ClusterMember(w as unknown as WorkerContext<Settings> & { settings: MemberSettings });
      w.on('reload', () => member.reload());
      await member.run();
      return;
    }
    const p = new Promoter(w);
    w.on('reload', () => p.trigger('configuration reloaded'));
    try {
      if (w.settings.mode === 'witness') {
        w.log.log(`witness mode: watching ${describeConninfo(p.conninfo())}`);
        await p.witness();
        return;
      }
      if (p.inRecovery()) {
        w.log.log(`watching the primary ${describeConninfo(p.conninfo())} every ${w.settings.interval} ms`);
        await p.watch();
      }
      // A primary: report it and do nothing else.
      p.publish('primary');
      while (await w.wait()) p.publish('primary');
    } finally {
      p.close();
    }
  },
});
