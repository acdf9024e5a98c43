/**
 * Synchronous mode on the leader: keep `synchronous_standby_names` at
 * `ANY k (healthy standbys)` and record the same set in etcd (`sync`), in
 * an order that keeps this invariant at every step:
 *
 *   every commit acknowledged to a client is on at least k_etcd members of
 *   the set in etcd (or that set is empty, and no member may take the key).
 *
 * To change PostgreSQL's setting from (k, S) to (k', S'):
 *   1. etcd first: the union S ∪ S' with min(k, k'), or the empty set when
 *      S' is empty (an election then needs more members, never fewer);
 *   2. PostgreSQL: `ANY k' (S')` (or '' when S' is empty and the mode is not
 *      strict), then note the flushed position L;
 *   3. once k' members of S' have flushed L (every commit acknowledged
 *      before the change is on them too), etcd: (k', S').
 * Patroni does the same with its `/sync` key (ha.py,
 * `_process_multisync_replication`: "first set in postgresql.conf and then
 * in DCS; when removing, first remove in DCS, then in postgresql.conf").
 */
import type { WorkerContext } from '../../runtime/index';
import { alterSystem } from './alter-system';
import type { Dcs } from './dcs';
import type { ClusterView, SyncState } from './dcs-records';
import type { Replica } from './local';

/** What strict mode sets when no standby is healthy: commits wait. */
export const STRICT_PLACEHOLDER = 'tsworker_no_sync_standby';

export interface SyncSettings {
  synchronous_mode: boolean;
  synchronous_mode_strict: boolean;
  synchronous_node_count: number;
}

/** `ANY k (a, b)` for these names; '' for none. */
export function standbyNames(k: number, names: readonly string[]): string {
  if (names.length === 0) return '';
  return `ANY ${k} (${[...names].sort().map((n) => `"${n}"`).join(', ')})`;
}

/** Parse what standbyNames() writes; null for anything else. */
export function parseStandbyNames(value: string): { k: number; names: string[] } | null {
  if (value.trim() === '') return { k: 0, names: [] };
  const m = /^\s*ANY\s+(\d+)\s*\((.*)\)\s*$/i.exec(value);
  if (!m) return null;
  const names = m[2]
    .split(',')
    .map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
    .filter((s) => s.length > 0);
  return { k: Number(m[1]), names };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\0') === [...b].sort().join('\0');
}

/** Set synchronous_standby_names on this server (ALTER SYSTEM + reload). */
export function setStandbyNames(w: WorkerContext<any>, value: string, timeoutMs: number): Promise<void> {
  return alterSystem(w, { synchronous_standby_names: value }, timeoutMs);
}

export class SyncManager {
  /** A change waiting for its standbys to catch up: the target and the position to reach. */
  private pending: { k: number; names: string[]; lsn: number | null } | null = null;

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly dcs: Dcs,
    private readonly me: string,
    private readonly log: (kind: string, detail: Record<string, unknown>) => void,
    private readonly timeoutMs: () => number,
  ) {}

  /**
   * One step towards the target set; called by the leader each loop.
   * `healthy` are the standbys that may be synchronous now.
   */
  async step(s: SyncSettings, view: ClusterView, current: string, replicas: Replica[], healthy: string[], flushLsn: number): Promise<void> {
    if (!s.synchronous_mode) {
      this.pending = null;
      if (view.sync) {
        await this.dcs.deleteSync();
        this.log('sync_disabled', {});
      }
      if (parseStandbyNames(current)?.names.length || current.includes(STRICT_PLACEHOLDER)) await setStandbyNames(this.w, '', this.timeoutMs());
      return;
    }
    let d: SyncState & { modRevision: string | null } = view.sync ?? { leader: this.me, members: [], quorum: s.synchronous_node_count, modRevision: null };
    if (!view.sync || d.leader !== this.me) {
      // a new leader starts with an empty set: nobody may take the key until standbys are confirmed
      const fresh = { leader: this.me, members: [], quorum: s.synchronous_node_count };
      if (!(await this.dcs.writeSync(fresh, view.sync?.modRevision ?? null))) return;
      this.log('sync_state', { members: [], quorum: fresh.quorum, why: 'this member leads now' });
      return; // the next loop reads the new revision
    }
    const p = parseStandbyNames(current) ?? { k: 0, names: [] };
    const names = healthy;
    let target: { k: number; names: string[] };
    if (names.length > 0) target = { k: Math.min(s.synchronous_node_count, names.length), names };
    else if (s.synchronous_mode_strict) target = p.names.length > 0 ? p : { k: 1, names: [STRICT_PLACEHOLDER] };
    else target = { k: 0, names: [] };
    const targetEtcd = target.names.filter((n) => n !== STRICT_PLACEHOLDER);

    // 3. a pending change whose standbys caught up: record it in etcd
    if (this.pending && sameSet(this.pending.names, p.names) && this.pending.k === p.k) {
      // the position to reach is taken one loop after the reload, once every process applies the new setting
      if (this.pending.lsn === null) {
        this.pending.lsn = flushLsn;
        return;
      }
      const caught = replicas.filter((r) => this.pending!.names.includes(r.name) && r.flush !== null && r.flush >= (this.pending!.lsn as number)).length;
      if (caught >= this.pending.k) {
        const state = { leader: this.me, members: this.pending.names.filter((n) => n !== STRICT_PLACEHOLDER), quorum: this.pending.k };
        if (!sameSet(state.members, d.members) || state.quorum !== d.quorum) {
          if (await this.dcs.writeSync(state, d.modRevision)) this.log('sync_state', { members: state.members, quorum: state.quorum, why: 'the synchronous standbys confirmed' });
        }
        this.pending = null;
      }
      return;
    }
    if (sameSet(target.names, p.names) && target.k === p.k) {
      // PostgreSQL is where it should be; etcd may still hold a superset (step 3 not done, e.g. after a restart)
      if (!sameSet(targetEtcd, d.members) || (targetEtcd.length > 0 && d.quorum !== target.k)) {
        this.pending = { k: target.k, names: target.names, lsn: null };
      }
      return;
    }
    // 1. etcd first: a superset with the smaller k, or empty
    const union = targetEtcd.length === 0 ? [] : [...new Set([...d.members, ...targetEtcd])];
    const quorum = Math.min(d.quorum || target.k, target.k || d.quorum);
    if (!sameSet(union, d.members) || (union.length > 0 && quorum !== d.quorum)) {
      if (!(await this.dcs.writeSync({ leader: this.me, members: union, quorum }, d.modRevision))) return;
      this.log('sync_state', { members: union, quorum, why: 'widened before synchronous_standby_names changes' });
      d = { ...d, members: union, quorum };
    }
    // 2. then PostgreSQL
    const value = standbyNames(target.k, target.names);
    await setStandbyNames(this.w, value, this.timeoutMs());
    this.log('synchronous_standby_names', { value, was: current });
    this.pending = target.names.length > 0 ? { k: target.k, names: target.names, lsn: null } : null;
  }
}
