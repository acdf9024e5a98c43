/**
 * Built-in worker `walarchive`: pg_receivewal inside the server
 * (docs/walarchive.md). Streams WAL over a physical replication connection
 * into an archive directory, with pg_receivewal's file names, `.partial`
 * handling, status updates and fsync rules; optionally synchronous, so
 * that a source naming it in synchronous_standby_names commits only once
 * the WAL is on the archive's disk; follows timeline switches; resumes
 * exactly where the directory's data ends.
 *
 *   shared_preload_libraries = 'pg_tsworker'
 *   tsworker.workers = 'walarchive'
 *   tsworker_walarchive.directory = '/var/lib/postgresql/walarchive'
 *   tsworker_walarchive.slot = 'walarchive'
 *
 * The worker writes no table (nothing it does waits for a synchronous
 * standby); its state is in tsworker.workers.status and the log.
 */
import { defineWorker, type Json, type WorkerContext } from '../runtime/index';
import { uncompressedSegments } from './walarchive/archive-dir';
import { Compressor } from './walarchive/compress';
import { DirectoryInUse, lockDirectory, unlockDirectory } from './walarchive/dir-lock';
import { checkConfig, ConfigError, needsReconnect, settings, type ArchiveConfig, type Settings } from './walarchive/config';
import { ArchiveError } from './walarchive/diagnose';
import { describeConninfo } from './promoter/conninfo';
import { Receiver } from './walarchive/receiver';
import { Session } from './walarchive/session';

type Ctx = WorkerContext<Settings>;

/** Longest wait between two attempts after failures. */
const MAX_BACKOFF_MS = 60_000;
/** A failure that repeats is logged again at most this often. */
const REPEAT_LOG_MS = 60_000;
/** How often the status is published while streaming. */
const PUBLISH_MS = 1000;

class Archiver {
  private cfg: ArchiveConfig | null = null;
  private receiver: Receiver | null = null;
  /** What the receiver and compressor were built for: a change of any of it needs new ones. */
  private built: { directory: string; compression: string; segSize: number } | null = null;
  private compressor: Compressor | null = null;
  private session: Session | null = null;
  private state = 'starting';
  private where: string | null = null;
  private error: { message: string; hint?: string; since: string; attempts: number } | null = null;
  private lastLoggedAt = 0;
  private wake: (() => void) | undefined;
  /** The archive directory this worker holds the lock of. */
  private locked: string | null = null;
  /** Failed sessions in a row with the current settings (the backoff's exponent). */
  private failures = 0;
  /** The worker's settings as last read, to tell a change of them from any other reload. */
  private seen = '';

  constructor(private readonly w: Ctx) {}

  /** Whether this server is a standby (primary_conninfo is a source only then). */
  private inRecovery(): boolean {
    return this.w.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')[0].r;
  }

  /** Read and check the settings; null (after reporting) when they are wrong. */
  private config(): ArchiveConfig | null {
    try {
      const primary = this.w.settings.source_conninfo ? null : this.inRecovery() ? this.w.setting('primary_conninfo') : null;
      return checkConfig(this.w.settings, this.w.name, primary, this.w.setting('data_directory'));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.fail('configuration error', err.message, err.hint);
      return null;
    }
  }

  /** Record and log a failure; a repeated one is logged again once a minute, with its count. */
  private fail(state: string, message: string, hint?: string): void {
    this.state = state;
    const same = this.error?.message === message;
    const attempts = same ? this.error!.attempts + 1 : 1;
    this.error = { message, hint, since: same ? this.error!.since : new Date().toISOString(), attempts };
    const now = Date.now();
    if (!same || now - this.lastLoggedAt >= REPEAT_LOG_MS) {
      this.lastLoggedAt = now;
      const again = same ? ` (still failing after ${attempts} attempts since ${this.error.since})` : '';
      const h = hint ? `; ${hint[0].toLowerCase()}${hint.slice(1)}` : '';
      this.w.log.warning(`${state}: ${message}${again}${h}`);
    }
    this.publish();
  }

  publish(): void {
    const cfg = this.cfg;
    const r = this.receiver?.state();
    const status: { [k: string]: Json } = {
      state: this.state,
      source: cfg ? this.where ?? describeConninfo(cfg.conninfo) : null,
      slot: cfg?.slot ?? null,
      synchronous: cfg?.synchronous ?? false,
      directory: cfg?.directory ?? null,
      timeline: r?.timeline || null,
      written: r?.written ?? null,
      flushed: r?.flushed ?? null,
      sourceEnd: r?.sourceEnd ?? null,
      lagBytes: r?.lagBytes ?? null,
      lagSeconds: r?.lagSeconds ?? null,
      lastSegment: r?.lastSegment ?? null,
      segments: r?.segments ?? 0,
      compressing: this.compressor?.pending ?? 0,
      error: this.error?.message ?? null,
    };
    this.w.status.set(status);
  }

  /** Settings reloaded: apply the live ones; end the session when the connection must change. */
  reload(): void {
    const before = this.cfg;
    const now = JSON.stringify(this.w.settings);
    const changed = now !== this.seen;
    this.seen = now;
    if (changed) {
      // new settings: their failures are counted (and backed off) afresh
      this.error = null;
      this.failures = 0;
    }
    const after = this.config();
    if (!after) {
      this.session?.stop();
      return;
    }
    this.receiver?.configure({ synchronous: after.synchronous, statusInterval: after.statusInterval, receiveTimeout: after.receiveTimeout });
    if (!before || needsReconnect(before, after)) {
      if (before) this.w.log.log('settings changed: connecting again');
      this.session?.stop();
      this.wake?.();
    } else if (changed && !this.session) {
      // waiting after a failure: try the new settings now
      this.wake?.();
    }
    this.cfg = { ...after };
    this.publish();
  }

  stop(): void {
    try {
      this.receiver?.finish();
    } catch (err) {
      this.w.log.warning(`could not flush the archive at shutdown: ${(err as Error).message}`);
    }
    this.session?.stop();
    this.wake?.();
  }

  /**
   * Hold the lock of `dir` (and only it): false, after reporting, when
   * another worker writes there.
   */
  private lock(dir: string): boolean {
    if (this.locked === dir) return true;
    try {
      lockDirectory(dir, this.w.name);
    } catch (err) {
      if (!(err instanceof DirectoryInUse)) throw err;
      this.fail('configuration error', err.message, 'Give each walarchive worker its own directory (tsworker_walarchive.directory), then reload.');
      return false;
    }
    if (this.locked) unlockDirectory(this.locked);
    this.locked = dir;
    return true;
  }

  /** While following primary_conninfo: end the session once this server is promoted (it is not a standby any more). */
  private checkPromoted(): void {
    if (!this.session || !this.cfg || this.w.settings.source_conninfo || this.inRecovery()) return;
    this.w.log.log('this server was promoted: primary_conninfo is no source any more');
    this.session.stop();
  }

  /** Wait `ms`, or less if woken; false once shutdown is asked. */
  private async pause(ms: number): Promise<boolean> {
    const woken = new Promise<boolean>((resolve) => {
      this.wake = () => resolve(true);
    });
    const r = await Promise.race([this.w.wait({ timeout: ms }), woken]);
    this.wake = undefined;
    return r && !this.w.shutdownRequested;
  }

  /**
   * The receiver (and compressor) for `cfg`'s directory and compression:
   * the one of the last session when they are the same, else new ones. The
   * live knobs come from the latest settings (`this.cfg`), so that a reload
   * made while connecting is not lost.
   */
  private setup(cfg: ArchiveConfig, segSize: number): Receiver {
    const live = this.cfg ?? cfg;
    const want = { directory: cfg.directory, compression: JSON.stringify(cfg.compression), segSize };
    const b = this.built;
    if (this.receiver && b && b.directory === want.directory && b.compression === want.compression && b.segSize === want.segSize) {
      this.receiver.configure({ synchronous: live.synchronous, statusInterval: live.statusInterval, receiveTimeout: live.receiveTimeout });
      return this.receiver;
    }
    // the previous compressor (another directory or method) takes no new segment; the new one starts once
    // the segment the old one is on is done
    const previous = this.compressor?.stop();
    this.compressor = new Compressor(
      cfg.directory,
      cfg.compression,
      (seg, err) => this.w.log.warning(`could not compress ${seg}: ${err.message}; it stays uncompressed, and is compressed again at the next start`),
      (seg, bytes) => this.w.log.debug(`compressed ${seg} (${bytes} bytes)`),
      previous,
    );
    if (cfg.compression.method !== 'none') {
      for (const seg of uncompressedSegments(cfg.directory, segSize, cfg.compression.method)) this.compressor.add(seg);
    }
    const compressor = this.compressor;
    this.receiver = new Receiver({
      dir: cfg.directory,
      segSize,
      synchronous: live.synchronous,
      statusInterval: live.statusInterval,
      receiveTimeout: live.receiveTimeout,
      onSegment: (name, timeline) => {
        this.w.log.debug(`finished segment ${name} (timeline ${timeline})`);
        compressor.add(name);
      },
    });
    this.built = want;
    return this.receiver;
  }

  async run(): Promise<void> {
    this.seen = JSON.stringify(this.w.settings);
    const publisher = setInterval(() => {
      try {
        this.checkPromoted();
      } catch (err) {
        this.w.log.warning(`could not check whether this server is still a standby: ${(err as Error).message}`);
      }
      this.publish();
    }, PUBLISH_MS);
    try {
      while (!this.w.shutdownRequested) {
        const cfg = this.config();
        if (!cfg || !this.lock(cfg.directory)) {
          // Wait for a reload (or check again in a while: a directory may appear, or be freed).
          if (!(await this.pause(Math.min(MAX_BACKOFF_MS, 10_000)))) return;
          continue;
        }
        if (!this.cfg) {
          this.w.log.log(
            `archiving WAL from ${describeConninfo(cfg.conninfo)} into ${cfg.directory}` +
              `${cfg.slot ? ` with slot "${cfg.slot}"` : ''}${cfg.synchronous ? ', synchronous' : ''}` +
              `${cfg.compression.method !== 'none' ? `, ${cfg.compression.method} compression` : ''}`,
          );
          if (!cfg.slot) {
            this.w.log.warning('no replication slot (tsworker_walarchive.slot is empty): the source may remove WAL before it is archived');
          }
        }
        this.cfg = cfg;
        this.state = 'connecting';
        const session = new Session(cfg, (segSize) => this.setup(cfg, segSize), {
          log: (text) => this.w.log.log(text),
          warn: (text) => this.w.log.warning(text),
          streaming: (where) => {
            this.where = where;
            this.state = 'streaming';
            if (this.error) this.w.log.log(`streaming again after: ${this.error.message}`);
            this.error = null;
            this.failures = 0;
            this.publish();
          },
        });
        this.session = session;
        try {
          await session.run();
        } catch (err) {
          const e = err instanceof ArchiveError ? err : new ArchiveError((err as Error).message);
          this.failures++;
          this.fail('failing', e.message, e.hint);
        } finally {
          this.session = null;
        }
        if (this.w.shutdownRequested) return;
        const backoff = this.failures === 0 ? 0 : Math.min(MAX_BACKOFF_MS, cfg.retryInterval * 2 ** Math.min(this.failures - 1, 16));
        if (!(await this.pause(backoff))) return;
      }
    } finally {
      clearInterval(publisher);
      // The segment being compressed is finished before the directory is
      // unlocked (a worker started next must not compress it too); the
      // others wait for the next start.
      await this.compressor?.stop();
      if (this.locked) unlockDirectory(this.locked);
      // Segments still waiting for compression are compressed at the next start.
      this.state = 'stopped';
      this.publish();
    }
  }
}

export default defineWorker({
  name: 'walarchive',
  start: 'standby',
  restart: 'on-failure',
  backoffMax: 10_000,
  settings,
  async main(w) {
    const a = new Archiver(w);
    w.on('reload', () => a.reload());
    w.on('shutdown', () => a.stop());
    await a.run();
  },
});
