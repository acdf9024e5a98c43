/**
 * Runs a plan's statements in order. Consecutive statements that run in
 * the worker's database go through SPI in one transaction (committed
 * before the next statement that needs a connection, so the order stays
 * compute_ctl's); statements that cannot run in a transaction block go
 * over one connection to the server itself; RunInEachDatabase's statements
 * go over one connection per database, `concurrency` databases at a time
 * (compute_ctl's `reconfigure_concurrency`). Every statement is logged with
 * its duration (passwords masked); each phase is a `db_apply_changes` span.
 *
 * The first failing statement stops the apply with an error naming its
 * phase and statement. What ran before it stays, as with compute_ctl; the
 * next apply of the same spec finishes the work.
 */
import type { Client } from 'pg';

import type { WorkerContext } from '../../runtime/index';
import type { SelfConnector } from './connect';
import type { SpiGate } from './gate';
import type { Operation } from './plan';
import { redact } from './render';
import { Tracing, type Context } from './tracing';

/** SPI statements run between two turns of the event loop during an apply. */
const YIELD_EVERY = 64;

/** A failed statement. */
export class ApplyError extends Error {
  constructor(
    readonly phase: string,
    readonly statement: string,
    cause: unknown,
  ) {
    super(`${phase}: ${(cause as Error)?.message ?? String(cause)} (statement: ${statement})`);
    this.name = 'ApplyError';
  }
}

/** What an apply needs from the worker. */
export interface ApplyEnv {
  w: WorkerContext;
  gate: SpiGate;
  connector: SelfConnector;
  tracing: Tracing;
  /** The worker's database (where `server` statements run). */
  database: string;
  /** Prefix of every log line (carries the trace id of a traced request). */
  logPrefix: string;
}

const yieldLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Applier {
  private server: Client | null = null;
  statements = 0;

  constructor(private readonly env: ApplyEnv) {}

  private log(phase: string, sql: string, ms: number, where: string): void {
    this.statements++;
    this.env.w.log.log(`${this.env.logPrefix}${phase}${where}: ${redact(sql)} (${ms.toFixed(3)} ms)`);
  }

  private async timed(op: Operation, where: string, run: () => unknown): Promise<void> {
    const t0 = performance.now();
    try {
      await run();
    } catch (err) {
      throw new ApplyError(op.phase, redact(op.sql), err);
    }
    this.log(op.phase, op.sql, performance.now() - t0, where);
  }

  /**
   * Consecutive SPI statements, in one transaction. PostgreSQL 18 warns
   * about every MD5 password set (md5_password_warnings), and a message
   * raised under SPI is logged with the statement as its CONTEXT: the
   * spec's password hashes would reach the server log. The warning is
   * turned off for the transaction (a no-op before 18, which lacks it).
   */
  private async spi(ops: Operation[]): Promise<void> {
    await this.env.gate.run(() =>
      this.env.w.transaction(
        async (tx) => {
          tx.query(`SELECT pg_catalog.set_config(name, 'off', true) FROM pg_catalog.pg_settings WHERE name = 'md5_password_warnings'`);
          for (let i = 0; i < ops.length; i++) {
            if (i > 0 && i % YIELD_EVERY === 0) await yieldLoop();
            await this.timed(ops[i], '', () => tx.query(ops[i].sql));
          }
        },
        { statementSavepoints: false },
      ),
    );
  }

  /** Statements outside a transaction block, over the connection to the worker's database. */
  private async outside(ops: Operation[]): Promise<void> {
    if (!this.server) this.server = await this.env.connector.connect(this.env.database);
    const client = this.server;
    for (const op of ops) await this.timed(op, ' (connection)', () => client.query(op.sql));
  }

  /** Statements in other databases: one connection per database, `concurrency` at a time. */
  private async perDatabase(ops: Operation[], concurrency: number): Promise<void> {
    const byDb = new Map<string, Operation[]>();
    for (const op of ops) {
      const db = (op.target as { database: string }).database;
      byDb.set(db, [...(byDb.get(db) ?? []), op]);
    }
    const queue = [...byDb.entries()];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [db, list] = next;
        await this.env.connector.with(db, async (client) => {
          for (const op of list) await this.timed(op, ` (database ${JSON.stringify(db)})`, () => client.query(op.sql));
        });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, queue.length)) }, worker));
  }

  /**
   * Run `ops` in order; phases are spans under `parent`. Rejects with an
   * {@link ApplyError} at the first failure.
   */
  async run(ops: readonly Operation[], parent: Context, concurrency: number): Promise<void> {
    try {
      let i = 0;
      while (i < ops.length) {
        const phase = ops[i].phase;
        let end = i;
        while (end < ops.length && ops[end].phase === phase) end++;
        const span = this.env.tracing.start('db_apply_changes', parent, { phase, statements: end - i });
        try {
          await this.runPhase(ops.slice(i, end), concurrency);
          Tracing.end(span);
        } catch (err) {
          Tracing.end(span, err);
          throw err;
        }
        i = end;
      }
    } finally {
      if (this.server) await this.env.connector.release(this.server).catch(() => undefined);
      this.server = null;
      await this.env.connector.settled();
    }
  }

  private async runPhase(ops: Operation[], concurrency: number): Promise<void> {
    let i = 0;
    while (i < ops.length) {
      const kind = typeof ops[i].target === 'string' ? ops[i].target : 'database';
      let end = i;
      while (end < ops.length && (typeof ops[end].target === 'string' ? ops[end].target : 'database') === kind) end++;
      const run = ops.slice(i, end);
      if (kind === 'spi') await this.spi(run);
      else if (kind === 'server') await this.outside(run);
      else await this.perDatabase(run, concurrency);
      i = end;
    }
  }
}
