/**
 * Seeing that the server shuts down before the postmaster asks this worker
 * to stop.
 *
 * A smart shutdown (`pg_ctl stop -m smart`) waits for every client session
 * to end before the postmaster signals the background workers. A client
 * session that a worker keeps open itself (the LISTEN connection of
 * `w.listen()`, or the worker's own `pg` client to its server) therefore
 * never ends: the worker waits for a SIGTERM the postmaster sends only
 * once that session is gone, and the server stays "shutting down" for
 * ever, refusing connections.
 *
 * The postmaster writes its status into line 8 of `postmaster.pid`
 * (LOCK_FILE_LINE_PM_STATUS, what `pg_ctl` reads) as soon as it is asked to
 * shut down, in any mode: `stopping`. Worker processes run in the data
 * directory (the postmaster's working directory), so the watch reads
 * `./postmaster.pid` once a second while something needs it: about 10 µs
 * of a turn of the event loop, and no SQL.
 */
import * as fs from 'fs';

/** The status line (1-based line 8) of postmaster.pid, as PostgreSQL's pidfile.h defines it. */
const PM_STATUS_LINE = 7;
const PM_STATUS_STOPPING = 'stopping';
/** How often the file is read while watched, in ms. */
export const SERVER_STOPPING_POLL_MS = 1_000;

/** Does `postmaster.pid` in `dataDir` say the server is shutting down? */
export function serverIsStopping(dataDir = process.cwd()): boolean {
  let text: string;
  try {
    text = fs.readFileSync(`${dataDir}/postmaster.pid`, 'latin1');
  } catch {
    return false; // not readable here (not a data directory): nothing to see
  }
  return text.split('\n')[PM_STATUS_LINE]?.trim() === PM_STATUS_STOPPING;
}

/**
 * Calls `onStopping` once, when the server begins to shut down, while
 * started. Started and stopped as often as needed; the timer does not keep
 * the event loop alive.
 */
export class ServerStoppingWatch {
  private timer: NodeJS.Timeout | undefined;
  private seen = false;

  constructor(
    private readonly onStopping: () => void,
    private readonly dataDir = process.cwd(),
  ) {}

  /** Has the server been seen shutting down? */
  get stopping(): boolean {
    return this.seen;
  }

  start(): void {
    if (this.timer || this.seen) return;
    if (this.poll()) return;
    this.timer = setInterval(() => this.poll(), SERVER_STOPPING_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private poll(): boolean {
    if (this.seen || !serverIsStopping(this.dataDir)) return false;
    this.seen = true;
    this.stop();
    this.onStopping();
    return true;
  }
}
