/**
 * An operator's request as its caller handles it (ctl.ts for the SQL
 * functions and pg_tsworker_ctl): the options and errors of a call, its
 * clock (the timeout counts from the call), posting the request in etcd's
 * `failover` key, withdrawing it when the caller is told to stop, and
 * waiting for its outcome as the members record it.
 */
import { Dcs, DcsError } from './dcs';
import type { ClusterView, FailoverRequest, OperationLine } from './dcs-records';
import { numberToLsn } from './local';
import { askPeer } from './peers';
import { clusterPrefix, parseHosts } from './settings';

/** A refusal or failure, with the SQLSTATE the SQL function raises. */
export class CtlError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
    readonly detail = '',
    readonly hint = '',
  ) {
    super(message);
  }
}

/** What every operation needs. */
export interface CtlOptions {
  hosts: string;
  scope: string;
  namespace: string;
  /** Citus group (docs/citus.md); absent or -1: no Citus formation. */
  citusGroup?: number;
  /** The member asking (its name goes into the request). */
  name: string;
  candidate: string | null;
  /** Switchover: the member expected to lead (Patroni's `--leader`); refused when another one does. */
  leader?: string | null;
  force: boolean;
  timeoutMs: number;
  retryTimeoutMs: number;
  /** maximum_lag_on_failover, bytes. */
  maxLagBytes: number;
  /** The backend asking (the leader keeps that session when it stops writes). */
  pid: number | null;
  /**
   * When the call began (Date.now() of the calling backend, before this
   * process started): the timeout counts from it. Default: now.
   */
  startedAt?: number;
}

/** When the call's clock started: `startedAt` if it is sane (not in the future, not before the timeout), else now. */
export function callStart(o: CtlOptions): number {
  const now = Date.now();
  const s = o.startedAt;
  return s !== undefined && Number.isFinite(s) && s <= now && s > now - o.timeoutMs - 60_000 ? s : now;
}

export const OBJECT_NOT_IN_PREREQUISITE_STATE = '55000';
export const OBJECT_IN_USE = '55006';
export const UNDEFINED_OBJECT = '42704';
export const INVALID_PARAMETER_VALUE = '22023';
export const QUERY_CANCELED = '57014';
export const CONNECTION_FAILURE = '08006';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How often the outcome is read from etcd. */
const POLL_MS = 20;
/** How long past its timeout a call waits to learn how a request the members were working on ended. */
const OUTCOME_GRACE_MS = 3000;

/** Where a cluster's keys are, and how long etcd may take to answer. */
export type DcsOptions = Pick<CtlOptions, 'hosts' | 'namespace' | 'scope' | 'citusGroup' | 'retryTimeoutMs'>;

export function open(o: DcsOptions): Dcs {
  // not on the leader's clock: a busy machine may take seconds to answer the first request
  return new Dcs(parseHosts(o.hosts), clusterPrefix(o.namespace, o.scope, o.citusGroup), Math.max(o.retryTimeoutMs, 5000));
}

/** How long recording an operation may add to a call: the leader that was asked waits only 2 s for its caller before it shuts down. */
const RECORD_MS = 1000;

/**
 * Append `line` (its time is when it is written) to etcd's `operations`,
 * within RECORD_MS; a failure goes to stderr (the server log, for the SQL
 * functions) and changes nothing in the call's outcome.
 */
export async function recordOperation(o: DcsOptions, line: Omit<OperationLine, 'at'>): Promise<void> {
  const d = open(o);
  const what = `${line.op}${line.candidate ? ` to "${line.candidate}"` : ''} on member "${line.member}" (${line.outcome}${line.code ? ` ${line.code}` : ''})`;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      d.appendOperation({ at: new Date().toISOString(), ...line }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`etcd did not take it within ${RECORD_MS} ms`)), RECORD_MS);
      }),
    ]);
  } catch (err) {
    process.stderr.write(`pg_tsworker: could not record the ${what} in etcd's operations: ${(err as Error).message}\n`);
  } finally {
    clearTimeout(timer);
    d.close();
  }
}

export async function readView(dcs: Dcs, o: CtlOptions): Promise<ClusterView> {
  try {
    const view = await dcs.read();
    if (view.initialize === null) throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `cluster "${o.scope}" is not initialized in etcd`);
    return view;
  } catch (err) {
    if (err instanceof DcsError) throw new CtlError(CONNECTION_FAILURE, `etcd did not answer: ${err.message}`);
    throw err;
  }
}

/** A request still being worked on (not finished, not past its deadline). */
export function inProgress(view: ClusterView): FailoverRequest | null {
  const f = view.failover;
  if (!f || f.state === 'done' || f.state === 'refused') return null;
  if (f.state === 'requested' && Date.parse(f.deadline) <= Date.now()) return null;
  return f;
}

export function lsnText(n: number | null): string {
  return n === null ? 'unknown' : numberToLsn(n);
}

/** This process was told to stop (withdrawOnSignals): the withdrawal writes the call's line, not the call. */
let stopping = false;

/** Whether this process was told to stop: its call's line is the withdrawal's to write. */
export function stopRequested(): boolean {
  return stopping;
}

/** The request this process posted and still waits for: withdrawn if the process is told to stop. */
let posted: { dcs: Dcs; req: FailoverRequest; o: CtlOptions } | null = null;

/** The call is over (answered or failed): nothing to withdraw any more. */
export function settled(): void {
  posted = null;
}

/**
 * On these signals, withdraw the request this process waits for (delete
 * the `failover` key if it still holds it, within 1 s), then exit: a
 * cancelled SQL call (its child gets SIGINT or SIGTERM) or an
 * interrupted pg_tsworker_ctl calls its switchover off, and a leader that
 * had stopped writes for it resumes them at once (handover.ts).
 */
export function withdrawOnSignals(signals: NodeJS.Signals[], exitCode: number): void {
  for (const sig of signals) {
    process.on(sig, () => {
      if (stopping) return; // a cancelled call may bring SIGINT (to the process group), then SIGTERM (from the backend)
      stopping = true;
      const p = posted;
      const done = () => process.exit(exitCode);
      if (!p) done();
      else {
        const id = p.req.id;
        process.stderr.write(`pg_tsworker: ${sig}: withdrawing request ${id}\n`);
        setTimeout(done, 1000).unref();
        (async () => {
          const cur = await p.dcs.deleteFailover(id).catch((err: Error) => {
            process.stderr.write(`pg_tsworker: could not withdraw request ${id}: ${err.message}\n`);
            return null;
          });
          // a request the leader already handed over goes on: the line says so
          const past = cur === 'handed_over' || cur === 'done';
          await recordOperation(
            p.o,
            {
              op: p.req.kind,
              member: p.o.name,
              candidate: p.req.member,
              outcome: past ? 'cancelled_after_handover' : 'withdrawn',
              detail: past
                ? `the caller was cancelled (${sig}) after the leader handed over to "${p.req.member}" (state ${cur}): the ${p.req.kind} went on`
                : `the caller was cancelled (${sig}): the request was withdrawn${cur ? ` (state ${cur})` : ''}`,
            },
          ); // (its own etcd client: the call's flow, woken by the withdrawal, closes p.dcs)
        })().then(done, done);
      }
    });
  }
}

export async function post(dcs: Dcs, view: ClusterView, req: FailoverRequest, o: CtlOptions): Promise<void> {
  const stale = view.failover && !inProgress(view) ? view.failover.modRevision : null;
  // the key outlives the deadline by the time a caller waits to learn the outcome
  const ttl = Math.ceil((o.timeoutMs + OUTCOME_GRACE_MS) / 1000) + 2;
  posted = { dcs, req, o };
  if (!(await dcs.postFailover(req, ttl, stale))) {
    posted = null;
    throw new CtlError(OBJECT_IN_USE, 'another switchover or failover was requested at the same moment');
  }
}

/**
 * A request that another member's election overtook: the leader key is
 * held by a member that is neither the one handing over (before the
 * handover) nor the candidate (after it). The candidate was lost after it
 * promoted, or the old leader during the handover; the cluster's failover
 * elected someone else. Waiting for the candidate to answer writable would
 * only wait out the timeout.
 */
function overtakenBy(f: FailoverRequest, view: ClusterView): { message: string; detail: string } | null {
  const holder = view.leader?.name;
  if (!holder || holder === f.member) return null;
  const what = f.kind;
  if (f.state === 'done' || f.state === 'handed_over') {
    return {
      message: `${what} to member "${f.member}" was overtaken: member "${holder}" leads now`,
      detail:
        `Member "${f.member}" took the leader key${f.state === 'done' ? ` and promoted (at ${f.done_at ?? '?'})` : ''}, then lost it (its lease ran out: it stopped answering etcd), ` +
        `and the cluster elected "${holder}". tsworker.events and GET /history on the members say what happened.`,
    };
  }
  if ((f.state === 'accepted' || f.state === 'fenced') && holder !== f.leader) {
    return {
      message: `${what} to member "${f.member}" was overtaken: member "${holder}" leads now`,
      detail: `The leader handing over, "${f.leader ?? '?'}", was lost during the ${what} (state ${f.state}), and the cluster elected "${holder}".`,
    };
  }
  return null;
}

/** Wait until the request is done (its candidate accepts writes) or refused, or the deadline passes. */
export async function outcome(dcs: Dcs, req: FailoverRequest, o: CtlOptions, t0: number): Promise<FailoverRequest> {
  const what = req.kind;
  let last: FailoverRequest | null = req;
  for (;;) {
    let view: ClusterView | null = null;
    try {
      view = await dcs.read();
    } catch {
      // etcd may be busy for a moment: keep asking until the deadline
    }
    if (view) {
      const f = view.failover;
      if (f && f.id === req.id) {
        last = f;
        if (f.state === 'refused') {
          await dcs.deleteFailover(req.id).catch(() => undefined);
          if (Date.now() - t0 >= o.timeoutMs) {
            // the leader gave up at the deadline: it leads on, and writes resumed there
            throw new CtlError(
              QUERY_CANCELED,
              `${what} to member "${req.member}" did not finish within ${o.timeoutMs} ms: ${f.reason ?? 'the leader gave up'}`,
              `Nothing changed: member "${f.leader ?? req.leader ?? '(the leader)'}" still leads and accepts writes; every commit it acknowledged is kept.`,
            );
          }
          throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `${what} refused: ${f.reason ?? 'no reason given'}`);
        }
        if (f.state === 'handed_over' && req.leader !== null && req.requested_by === req.leader) {
          // asked on the leader itself, which shuts down now (ending this session): every commit is on the
          // candidate and it holds the leader key; the leader waits for this call to return before it goes
          return f;
        }
        const overtaken = overtakenBy(f, view);
        if (overtaken) {
          await dcs.deleteFailover(req.id).catch(() => undefined);
          throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, overtaken.message, overtaken.detail);
        }
        if (f.state === 'done') {
          const m = view.members.get(req.member!);
          if (m) {
            const a = await askPeer(m.conninfo, o.retryTimeoutMs).catch(() => null);
            if (a && !a.recovery && a.writable) {
              await dcs.deleteFailover(req.id).catch(() => undefined);
              return f;
            }
          }
        }
      } else if (last && last.state !== 'requested') {
        throw new CtlError(OBJECT_NOT_IN_PREREQUISITE_STATE, `the ${what} request disappeared from etcd in state "${last.state}"`, 'Its deadline passed, or another request replaced it.');
      }
    }
    // past the timeout, a request the members are working on ends by itself at its deadline (the same
    // moment): wait OUTCOME_GRACE_MS more to report how it ended (refused, writes resumed; or done)
    if (Date.now() - t0 >= o.timeoutMs && (last?.state === 'requested' || Date.now() - t0 >= o.timeoutMs + OUTCOME_GRACE_MS)) {
      if (last?.state === 'requested') await dcs.deleteFailover(req.id).catch(() => undefined);
      throw new CtlError(
        QUERY_CANCELED,
        `${what} to member "${req.member}" did not finish within ${o.timeoutMs} ms (state: ${last?.state ?? 'unknown'})`,
        last?.state === 'requested'
          ? 'No member acted on the request; it was withdrawn.'
          : 'The members go on with it: it completes, or the leader gives up and writes resume there. tsworker.stat_workers and the log say which.',
      );
    }
    await sleep(POLL_MS);
  }
}
