/**
 * Operators' requests to a cluster in cluster mode, run outside the worker:
 * by the SQL functions `tsworker.switchover()`, `tsworker.failover()`,
 * `tsworker.pause()` and `tsworker.resume()` (native/shim/cluster_ctl.c
 * runs this script in a pg_tsworker_node child of the calling backend: a
 * cancel makes it withdraw its request, ctl-request.ts) and by
 * `pg_tsworker_ctl` (cli.ts).
 *
 *   pg_tsworker_node ctl.js switchover|failover|pause|resume --hosts H --scope S --name ME
 *       [--namespace P] [--citus_group G] [--candidate C] [--force on] [--timeout MS] [--retry_timeout MS]
 *       [--max_lag KB] [--pid N] [--leader L] [--started_at EPOCH_MS]
 *
 * Prints one line: `ok<TAB><JSON>`, or `error<TAB><SQLSTATE><TAB><message><TAB><detail><TAB><hint>`.
 *
 * A switchover or failover is posted in etcd's `failover` key (Patroni's
 * /failover) with a deadline, attached to a lease that ends with it; the
 * members act on it (handover.ts, leader.ts, takeover.ts) and record its progress there;
 * this side checks what it can beforehand, so that a request that cannot
 * succeed is refused at once with its reason, and waits for the outcome
 * (ctl-request.ts).
 */
import { randomBytes } from 'crypto';

import {
  CONNECTION_FAILURE,
  CtlError,
  INVALID_PARAMETER_VALUE,
  OBJECT_IN_USE,
  OBJECT_NOT_IN_PREREQUISITE_STATE,
  QUERY_CANCELED,
  UNDEFINED_OBJECT,
  callStart,
  inProgress,
  lsnText,
  open,
  outcome,
  post,
  readView,
  recordOperation,
  settled,
  stopRequested,
  withdrawOnSignals,
  type CtlOptions,
} from './ctl-request';
import { DcsError } from './dcs';
import type { ClusterView, FailoverRequest, OperationLine } from './dcs-records';
import { ranksBefore, type Candidate } from './election';
import { numberToLsn } from './local';
import { askLastLeader, askMembers, askPeer } from './peers';

export { CtlError, withdrawOnSignals, type CtlOptions } from './ctl-request';

/** Why member `c` (asked directly) may not take over from a leader at `leaderLsn` on `timeline`, or null. */
function switchoverProblem(c: Candidate, leaderLsn: number | null, timeline: number | null, maxLag: number): string | null {
  if (c.nofailover || c.priority <= 0) return `member "${c.name}" has the nofailover tag (or priority 0)`;
  if (c.source !== 'direct') return `member "${c.name}" does not answer`;
  if (!c.recovery) return `member "${c.name}" is not a standby`;
  // the lag first: a standby that does not stream reports its last restartpoint's timeline
  const lag = (leaderLsn ?? 0) - (c.lsn ?? 0);
  if (lag > maxLag) return `member "${c.name}" lags ${lag} bytes behind the leader (${lsnText(c.lsn)} against ${lsnText(leaderLsn)}), more than maximum_lag_on_failover (${maxLag} bytes)`;
  if (timeline !== null && c.timeline !== null && c.timeline !== timeline) return `member "${c.name}" is on timeline ${c.timeline}, not the leader's ${timeline}`;
  return null;
}

/** tsworker.switchover(candidate, timeout). */
/** 42704 for a name no member of the cluster has in etcd: a typo, or a member whose key expired (stopped longer than ttl). */
function noSuchMember(name: string, scope: string, view: ClusterView, more = ''): CtlError {
  return new CtlError(
    UNDEFINED_OBJECT,
    `no member named "${name}" in cluster "${scope}"`,
    `Members alive in etcd: ${[...view.members.keys()].join(', ') || 'none'}${more} (a member whose server or promoter stopped longer than ttl has no key until it is back; or the name is wrong).`,
  );
}

export async function switchover(o: CtlOptions): Promise<Record<string, unknown>> {
  const t0 = callStart(o);
  const dcs = open(o);
  try {
    const view = await readView(dcs, o);
    if (!view.leader) {
      throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `no member leads cluster "${o.scope}": a switchover needs a leader`, '', 'When the leader is gone, use tsworker.failover(candidate).');
    }
    const leader = view.leader.name;
    if (o.leader != null && o.leader !== leader && !view.members.has(o.leader)) {
      // a typo is not "the leader changed"
      throw noSuchMember(o.leader, o.scope, view, `; member "${leader}" leads`);
    }
    if (o.leader != null && o.leader !== leader) {
      throw new CtlError(
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        `member "${o.leader}" does not lead cluster "${o.scope}": member "${leader}" does`,
        'The leader changed since the switchover was planned (another switchover or a failover); nothing was requested.',
        `Check the cluster, then call tsworker.switchover(..., leader => '${leader}') if the move is still wanted.`,
      );
    }
    const busy = inProgress(view);
    if (busy) throw new CtlError(OBJECT_IN_USE, `a ${busy.kind} to member "${busy.member}" is in progress (state ${busy.state}, requested at ${busy.requested_at})`);
    const lm = view.members.get(leader);
    const l = lm ? await askPeer(lm.conninfo, o.retryTimeoutMs).catch(() => null) : null;
    if (!l || l.recovery) throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `the leader "${leader}" does not answer as a primary`);
    const members = await askMembers(view, leader, o.retryTimeoutMs);
    let to: Candidate | undefined;
    if (o.candidate !== null) {
      if (o.candidate === leader) throw new CtlError(INVALID_PARAMETER_VALUE, `member "${o.candidate}" already leads cluster "${o.scope}"`);
      to = members.find((m) => m.name === o.candidate);
      if (!to) throw noSuchMember(o.candidate, o.scope, view);
      const why = switchoverProblem(to, l.lsn, l.timeline, o.maxLagBytes);
      if (why) throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `member "${to.name}" cannot take over: ${why.replace(`member "${to.name}" `, '')}`);
    } else {
      const reasons: string[] = [];
      for (const m of members) {
        const why = switchoverProblem(m, l.lsn, l.timeline, o.maxLagBytes);
        if (why) reasons.push(why);
        else if (!to || ranksBefore(m, to)) to = m;
      }
      if (!to) throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `no member of cluster "${o.scope}" is eligible for a switchover`, reasons.join('; '));
    }
    const req: FailoverRequest = {
      id: randomBytes(8).toString('hex'),
      kind: 'switchover',
      leader,
      member: to.name,
      force: false,
      requested_by: o.name,
      ...(o.pid ? { pid: o.pid } : {}),
      requested_at: new Date().toISOString(),
      deadline: new Date(t0 + o.timeoutMs).toISOString(),
      state: 'requested',
    };
    if (Date.now() - t0 >= o.timeoutMs) {
      throw new CtlError(QUERY_CANCELED, `switchover to member "${to.name}" did not start within ${o.timeoutMs} ms`, 'The checks took the whole timeout (counted from the call); nothing was requested.');
    }
    await post(dcs, view, req, o);
    process.stderr.write(`pg_tsworker: switchover ${req.id} from "${leader}" to "${to.name}" requested on "${o.name}" (checked in ${Date.now() - t0} ms)\n`);
    const done = await outcome(dcs, req, o, t0);
    return {
      from: leader,
      to: to.name,
      state: done.state,
      timeline: done.timeline ?? null,
      final_lsn: done.lsn !== undefined ? numberToLsn(done.lsn) : null,
      fenced_at: done.fenced_at ?? null,
      done_at: done.done_at ?? null,
      write_pause_ms: done.fenced_at && done.done_at ? Date.parse(done.done_at) - Date.parse(done.fenced_at) : null,
      ms: Date.now() - t0,
    };
  } finally {
    settled();
    dcs.close();
  }
}

/** tsworker.failover(candidate, force, timeout). */
export async function failover(o: CtlOptions): Promise<Record<string, unknown>> {
  const t0 = callStart(o);
  if (!o.candidate) throw new CtlError(INVALID_PARAMETER_VALUE, 'a manual failover needs a candidate');
  const dcs = open(o);
  try {
    const view = await readView(dcs, o);
    const busy = inProgress(view);
    if (busy) throw new CtlError(OBJECT_IN_USE, `a ${busy.kind} to member "${busy.member}" is in progress (state ${busy.state}, requested at ${busy.requested_at})`);
    // the name first: a hint must never recommend a member that does not exist
    if (!view.members.has(o.candidate)) {
      throw noSuchMember(o.candidate, o.scope, view);
    }
    if (view.leader) {
      throw new CtlError(
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        `member "${view.leader.name}" holds the leader key of cluster "${o.scope}": a manual failover is for a cluster whose leader is gone`,
        '',
        `Use tsworker.switchover('${o.candidate}') to move the leader.`,
      );
    }
    // the last leader too, when its key is gone: in maintenance mode it may still accept writes
    const [members, last] = await Promise.all([askMembers(view, '', o.retryTimeoutMs), askLastLeader(view, o.retryTimeoutMs)]);
    if (last) members.push(last);
    // the last leader counts as a writer and for what would be lost, never as a candidate: it has no member key
    const to = members.find((m) => m.name === o.candidate && m !== last);
    if (!to) throw noSuchMember(o.candidate, o.scope, view);
    if (to.nofailover || to.priority <= 0) throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `member "${to.name}" has the nofailover tag (or priority 0)`);
    if (to.source !== 'direct') throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `member "${to.name}" does not answer, so its WAL position is unknown`);
    const live = members.find((m) => m.source === 'direct' && !m.recovery && m.writable);
    if (live) {
      throw new CtlError(
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        `member "${live.name}" is a primary that accepts writes: failing over would make two`,
        live === last ? `It holds no leader key: it cannot reach etcd${view.config?.pause ? ' and, in maintenance mode, does not fence itself' : ''}.` : '',
        live === last ? `Restore its connection to etcd (it then takes its key back) or stop it, then fail over.` : '',
      );
    }
    const ahead = members.filter((m) => m !== to && m.lsn !== null && to.lsn !== null && m.lsn > to.lsn).sort((a, b) => (b.lsn ?? 0) - (a.lsn ?? 0));
    // what the old leader last published (its flush position, every loop): WAL past the candidate's there may
    // hold acknowledged commits even when no member that answers has it (those that may are gone from etcd)
    const behind = view.status && to.lsn !== null ? Math.max(0, view.status.optime - to.lsn) : 0;
    const lost = Math.max(ahead.length ? (ahead[0].lsn as number) - (to.lsn as number) : 0, behind);
    if (ahead.length && !o.force) {
      throw new CtlError(
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        `member "${ahead[0].name}" holds ${lost} bytes of WAL more than "${to.name}" (${lsnText(ahead[0].lsn)} against ${lsnText(to.lsn)}): failing over to "${to.name}" would lose them`,
        ahead.map((m) => `member "${m.name}" at ${lsnText(m.lsn)} (${m.source === 'direct' ? 'asked directly' : 'as published in etcd'}): ${(m.lsn as number) - (to.lsn as number)} bytes ahead`).join('; ') +
          '. Those bytes may hold commits acknowledged by the old leader.',
        `Pick "${ahead[0].name}", or call tsworker.failover('${to.name}', force => true) to accept the loss.`,
      );
    }
    // a synchronous standby has every acknowledged commit: the leader's own flush position may be ahead of what it acknowledged
    const synchronous = view.sync?.members.includes(to.name) ?? false;
    if (behind > 0 && !synchronous && !o.force) {
      throw new CtlError(
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        `member "${to.name}" is ${behind} bytes behind the last position the leader "${view.status!.leader ?? '?'}" published (${lsnText(view.status!.optime)} against ${lsnText(to.lsn)}): failing over to "${to.name}" would lose them`,
        'Those bytes may hold commits acknowledged by the old leader; the members that may have them could not be asked (their keys are gone from etcd: stopped, or cut off).',
        `Bring back a member that has them and pick it, or call tsworker.failover('${to.name}', force => true) to accept the loss.`,
      );
    }
    const req: FailoverRequest = {
      id: randomBytes(8).toString('hex'),
      kind: 'failover',
      leader: null,
      member: to.name,
      force: o.force,
      requested_by: o.name,
      requested_at: new Date().toISOString(),
      deadline: new Date(t0 + o.timeoutMs).toISOString(),
      state: 'requested',
      lsn: to.lsn ?? undefined,
    };
    await post(dcs, view, req, o);
    const done = await outcome(dcs, req, o, t0);
    return {
      to: to.name,
      timeline: done.timeline ?? null,
      lsn: lsnText(to.lsn),
      lost_bytes: lost,
      ahead: ahead.map((m) => ({ member: m.name, lsn: lsnText(m.lsn), bytes: (m.lsn as number) - (to.lsn as number) })),
      behind_last_leader_position: view.status && to.lsn !== null ? behind : null,
      forced: o.force,
      ms: Date.now() - t0,
    };
  } finally {
    settled();
    dcs.close();
  }
}

/** tsworker.pause() / tsworker.resume(): true when the call changed the state. */
export async function setPause(o: CtlOptions, pause: boolean): Promise<boolean> {
  const dcs = open(o);
  try {
    const view = await readView(dcs, o);
    if (!pause && view.config?.pause === true && view.leader === null) {
      // resumed, the members elect at once: not while the last leader, whose key went with its lease, accepts writes
      const last = await askLastLeader(view, o.retryTimeoutMs);
      if (last && !last.recovery && last.writable) {
        throw new CtlError(
          OBJECT_NOT_IN_PREREQUISITE_STATE,
          `member "${last.name}" accepts writes but holds no leader key (it cannot reach etcd): resuming would elect a second primary`,
          'In maintenance mode a leader that cannot reach etcd keeps accepting writes; once resumed, the other members hold an election without it.',
          `Restore its connection to etcd (it then takes its key back) or stop it, then call tsworker.resume() again.`,
        );
      }
    }
    const prev = await dcs.setConfig(pause ? { pause: true, paused_at: new Date().toISOString(), paused_by: o.name } : { pause: false });
    return (prev?.pause === true) !== pause;
  } catch (err) {
    if (err instanceof DcsError) throw new CtlError(CONNECTION_FAILURE, `etcd did not answer: ${err.message}`);
    throw err;
  } finally {
    dcs.close();
  }
}

/** The operations, by name. */
const OPERATIONS: Record<string, (o: CtlOptions) => Promise<unknown>> = {
  switchover,
  failover,
  pause: (o) => setPause(o, true),
  resume: (o) => setPause(o, false),
};

/**
 * Run one operation and record how it ended in etcd's `operations`
 * (dcs-records.ts OperationLine). A refusal for want of etcd is not
 * recorded (etcd is what did not answer); a failure to record is written to
 * stderr and changes nothing in the outcome.
 */
export async function run(op: string, o: CtlOptions): Promise<unknown> {
  if (!Object.hasOwn(OPERATIONS, op)) throw new CtlError(INVALID_PARAMETER_VALUE, `unknown operation "${op}"`);
  const act = OPERATIONS[op];
  const base = { op: op as OperationLine['op'], member: o.name, ...(op === 'switchover' || op === 'failover' ? { candidate: o.candidate } : {}) };
  let res: unknown;
  try {
    res = await act(o);
  } catch (err) {
    const e = err instanceof CtlError ? err : new CtlError('XX000', (err as Error).message);
    if (e.sqlstate !== CONNECTION_FAILURE && !stopRequested()) {
      await recordOperation(o, { ...base, outcome: 'refused', code: e.sqlstate, detail: e.detail ? `${e.message} (${e.detail})` : e.message });
    }
    throw err;
  }
  if (stopRequested()) return res; // the withdrawal writes the line
  if (typeof res === 'boolean') await recordOperation(o, { ...base, outcome: res ? 'done' : 'unchanged' });
  else await recordOperation(o, { ...base, outcome: 'done', result: res as Record<string, unknown> });
  return res;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The options of this script's command line (also what cli.ts builds). */
export function optionsFrom(argv: string[]): CtlOptions {
  const num = (name: string, dflt: number) => {
    const v = Number(arg(argv, name));
    return Number.isFinite(v) && v > 0 ? v : dflt;
  };
  return {
    hosts: arg(argv, 'hosts') ?? '',
    scope: arg(argv, 'scope') ?? '',
    namespace: arg(argv, 'namespace') ?? '/service/',
    citusGroup: Number(arg(argv, 'citus_group') ?? -1),
    name: arg(argv, 'name') ?? '',
    candidate: arg(argv, 'candidate') || null,
    leader: arg(argv, 'leader') || null,
    force: arg(argv, 'force') === 'on',
    timeoutMs: num('timeout', 60_000),
    retryTimeoutMs: num('retry_timeout', 750),
    maxLagBytes: num('max_lag', 1024) * 1024,
    pid: num('pid', 0) || null,
    startedAt: num('started_at', 0) || undefined,
  };
}

function clean(text: string): string {
  return text.replace(/[\t\r\n]+/g, ' ');
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  // SIGTERM: the backend, its call cancelled; SIGINT/SIGTERM also reach this process directly, in the
  // backend's process group, from pg_cancel_backend()/pg_terminate_backend()
  withdrawOnSignals(['SIGTERM', 'SIGINT'], 1);
  // told to stop, the withdrawal exits once it has withdrawn the request and written the line (within 1 s)
  const exit = () => {
    if (!stopRequested()) process.exit(0);
  };
  run(argv[0] ?? '', optionsFrom(argv))
    .then((res) => {
      process.stdout.write(`ok\t${JSON.stringify(res)}\n`);
      exit();
    })
    .catch((err: Error) => {
      const e = err instanceof CtlError ? err : new CtlError('XX000', err.message);
      process.stdout.write(`error\t${e.sqlstate}\t${clean(e.message)}\t${clean(e.detail)}\t${clean(e.hint)}\n`);
      exit();
    });
}
