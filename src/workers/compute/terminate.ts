/**
 * POST /terminate (compute_tools/src/http/routes/terminate.rs): shut the
 * server down from inside, as `pg_ctl stop` does, by signalling the
 * postmaster (the worker's parent process): SIGINT for `fast` (the
 * default), SIGQUIT for `immediate`. The answer is compute_ctl's
 * `TerminateResponse`, `{"lsn": "<last flushed LSN>"}`.
 *
 * - fast: the status becomes `termination_pending_fast` and the postmaster
 *   is signalled; it asks every backend and worker to stop. Once the other
 *   client backends are gone (at most {@link BACKENDS_GONE_MS}; a longer
 *   wait is logged), the worker commits a transaction with an xid, which
 *   flushes every WAL record inserted before it, reads the flush LSN,
 *   becomes `terminated`, answers, and stops. The answer is the end of the
 *   last WAL record flushed before the shutdown checkpoint: the checkpoint
 *   record the postmaster writes afterwards starts at or after it.
 * - immediate: the status becomes `termination_pending_immediate`; the
 *   worker reads the flush LSN, answers, and only then signals the
 *   postmaster, which kills every process at once (this worker too).
 */
import * as fs from 'fs';
import * as path from 'path';

import type { WorkerContext } from '../../runtime/index';
import type { SpiGate } from './gate';
import { HttpError, type Reply } from './http';
import { displayStatus, type ComputeState } from './status';

export type TerminateMode = 'fast' | 'immediate';

/** Longest wait for the other client backends to leave during a fast shutdown (ms). */
const BACKENDS_GONE_MS = 3000;
/** Longest wait, after SIGINT, for the shutdown to reach this worker (ms). */
const SHUTDOWN_WAIT_MS = 60_000;
/** Longest wait for the answer to be sent before the worker stops (ms). */
const SEND_MS = 1000;
/** The flush LSN as text, or NULL during recovery. */
const LSN = 'CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_flush_lsn()::text END';

export class Terminator {
  /** Resolves the pending fast /terminate answer once the shutdown reached this worker. */
  private finishFast: (() => Promise<void>) | null = null;

  constructor(
    private readonly w: WorkerContext,
    private readonly gate: SpiGate,
    private readonly state: ComputeState,
  ) {}

  /** The postmaster's pid, checked against postmaster.pid: never signal anything else. */
  private postmaster(): number {
    const ppid = process.ppid;
    const dataDir = this.w.setting('data_directory');
    if (!dataDir) throw new Error('data_directory is unknown');
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid !== ppid) throw new Error(`the parent process ${ppid} is not the postmaster of ${dataDir} (${pid})`);
    return pid;
  }

  /** The flush LSN; null on a standby (as compute_ctl answers for a compute that is not a primary). */
  private flushLsn(): Promise<string | null> {
    return this.gate.run(() => this.w.query<{ lsn: string | null }>(`SELECT ${LSN} AS lsn`)[0].lsn);
  }

  /** Handle POST /terminate (`mode`: the query parameter). */
  async request(mode: string | null): Promise<Reply> {
    const m = mode ?? 'fast';
    if (m !== 'fast' && m !== 'immediate') {
      throw new HttpError(400, `failed to deserialize query string: mode: unknown variant \`${m}\`, expected \`fast\` or \`immediate\``);
    }
    const status = this.state.status;
    if (status === 'terminated') return { status: 201, body: { lsn: this.state.terminateLsn } };
    if (status !== 'empty' && status !== 'running') throw new HttpError(412, `invalid compute status: ${displayStatus(status)}`);
    const pid = this.postmaster();
    if (m === 'immediate') {
      this.state.set('termination_pending_immediate');
      const lsn = await this.flushLsn();
      this.state.terminateLsn = lsn;
      this.state.set('terminated');
      this.w.log.log(`terminate (immediate): last flushed LSN ${lsn}; sending SIGQUIT to the postmaster (pid ${pid})`);
      return { status: 200, body: { lsn }, sent: () => process.kill(pid, 'SIGQUIT') };
    }
    this.state.set('termination_pending_fast');
    const answer = new Promise<Reply>((resolve) => {
      // Should the shutdown never reach this worker, the caller is not left waiting forever.
      const timer = setTimeout(() => {
        this.finishFast = null;
        resolve({ status: 500, body: { error: `the server did not begin to shut down within ${SHUTDOWN_WAIT_MS / 1000} s of SIGINT` } });
      }, SHUTDOWN_WAIT_MS);
      this.finishFast = async () => {
        clearTimeout(timer);
        const lsn = await this.lsnAfterBackends().catch((err: Error) => {
          this.w.log.warning(`terminate: could not read the flush LSN: ${err.message}`);
          return null;
        });
        this.state.terminateLsn = lsn;
        this.state.set('terminated');
        this.w.log.log(`terminate (fast): last flushed LSN ${lsn}`);
        await new Promise<void>((sent) => {
          setTimeout(sent, SEND_MS).unref();
          resolve({ status: 200, body: { lsn }, sent });
        });
      };
    });
    this.w.log.log(`terminate (fast): sending SIGINT to the postmaster (pid ${pid})`);
    process.kill(pid, 'SIGINT');
    return answer;
  }

  /**
   * The flush LSN once the other client backends are gone (at most
   * {@link BACKENDS_GONE_MS}) and every WAL record inserted before is
   * flushed: a transaction with an xid commits (synchronous_commit local),
   * and its commit flushes the WAL up to its own record.
   */
  private async lsnAfterBackends(): Promise<string | null> {
    const t0 = Date.now();
    let others = 0;
    for (;;) {
      others = await this.gate.run(
        () => this.w.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'`)[0].n,
      );
      if (others === 0 || Date.now() - t0 > BACKENDS_GONE_MS) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (others > 0) this.w.log.warning(`terminate (fast): ${others} client backend(s) still connected after ${BACKENDS_GONE_MS} ms; answering the flush LSN now`);
    return this.gate.run(() => {
      this.w.transaction(
        (tx) => {
          if (!tx.query<{ r: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS r')[0].r) tx.query('SELECT pg_catalog.txid_current()');
        },
        { synchronousCommit: 'local', statementSavepoints: false },
      );
      return this.w.query<{ lsn: string | null }>(`SELECT ${LSN} AS lsn`)[0].lsn;
    });
  }

  /**
   * The server asked this worker to stop: answer a pending fast /terminate
   * (and wait until the answer is sent). Does nothing otherwise.
   */
  async onShutdown(): Promise<void> {
    const finish = this.finishFast;
    this.finishFast = null;
    if (finish) await finish();
  }
}
