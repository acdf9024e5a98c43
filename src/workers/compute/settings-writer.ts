/**
 * The settings of a spec, all or nothing. Before any other statement of
 * the spec runs, every `ALTER SYSTEM` is written over one connection to the
 * server: PostgreSQL checks each value as it writes it (unknown parameter,
 * invalid value, out of range). When one is refused, the ones written
 * before it are undone (postgresql.auto.conf is put back as it was, no
 * reload has happened) and the spec is refused with the setting's JSON
 * path. When a later statement of the apply fails, {@link undo} puts the
 * file back and reloads: a failed apply leaves no setting behind.
 */
import type { WorkerContext } from '../../runtime/index';
import type { SelfConnector } from './connect';
import type { SettingWrite } from './plan';
import type { SpecProblem } from './spec-schema';

/** A setting PostgreSQL refused: the spec is refused with these problems. */
export class SettingRefused extends Error {
  constructor(readonly problems: SpecProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}

export class SettingsWriter {
  private written: SettingWrite[] = [];
  /** Statements run (writes, undos and the reload of an undo). */
  statements = 0;

  constructor(
    private readonly w: WorkerContext,
    private readonly connector: SelfConnector,
    /** The database the connection goes to (the worker's). */
    public database: string,
    private readonly logPrefix: string,
  ) {}

  private log(sql: string, ms: number, what = 'Settings'): void {
    this.statements++;
    this.w.log.log(`${this.logPrefix}${what} (connection): ${sql} (${ms.toFixed(3)} ms)`);
  }

  /**
   * Write `writes` in order. Throws {@link SettingRefused} (with `base`
   * before each path) when PostgreSQL refuses one, after undoing the ones
   * before it; any other error (no connection) is thrown as is, after the
   * same undo.
   */
  async write(writes: readonly SettingWrite[], base: string): Promise<void> {
    if (writes.length === 0) return;
    const client = await this.connector.connect(this.database);
    try {
      for (const s of writes) {
        const t0 = performance.now();
        try {
          await client.query(s.sql);
        } catch (err) {
          this.w.log.log(`${this.logPrefix}Settings (connection): ${s.sql} refused: ${(err as Error).message}`);
          await this.undoWith(client, false);
          const at = s.path === '/cluster/settings' ? `${base}${s.path}` : `${base}${s.path}/value`;
          throw new SettingRefused([{ path: at, message: (err as Error).message }]);
        }
        this.written.push(s);
        this.log(s.sql, performance.now() - t0);
      }
    } finally {
      await this.connector.release(client).catch(() => undefined);
    }
  }

  /** Put back every setting {@link write} wrote, newest first, and reload. Logs, never throws. */
  async undo(): Promise<void> {
    if (this.written.length === 0) return;
    let client;
    try {
      client = await this.connector.connect(this.database);
    } catch (err) {
      this.w.log.warning(`${this.logPrefix}could not undo the settings of the failed apply (${(err as Error).message}): ${this.written.map((s) => s.sql).join('; ')}`);
      return;
    }
    try {
      await this.undoWith(client, true);
    } finally {
      await this.connector.release(client).catch(() => undefined);
    }
  }

  private async undoWith(client: { query(sql: string): Promise<unknown> }, reload: boolean): Promise<void> {
    const failed: string[] = [];
    for (const s of [...this.written].reverse()) {
      const t0 = performance.now();
      try {
        await client.query(s.undo);
        this.log(s.undo, performance.now() - t0, 'Settings undone');
      } catch (err) {
        failed.push(`${s.undo}: ${(err as Error).message}`);
      }
    }
    this.written = [];
    if (reload) {
      const t0 = performance.now();
      await client.query('SELECT pg_catalog.pg_reload_conf()').then(
        () => this.log('SELECT pg_catalog.pg_reload_conf()', performance.now() - t0, 'Settings undone'),
        (err: Error) => failed.push(`reload: ${err.message}`),
      );
    }
    if (failed.length > 0) this.w.log.warning(`${this.logPrefix}settings not put back: ${failed.join('; ')}`);
  }
}
