/**
 * The compute's state, as compute_ctl keeps it (`ComputeState` in
 * compute_tools/src/compute.rs): its status, the last error, the last user
 * activity and the timings of /metrics.json. One owner: every change goes
 * through {@link ComputeState}, which tells its listeners.
 */

/**
 * compute_ctl's `ComputeStatus` (libs/compute_api/src/responses.rs), as
 * serialized in JSON (snake_case).
 */
export type ComputeStatus =
  | 'empty'
  | 'init'
  | 'configuration_pending'
  | 'configuration'
  | 'running'
  | 'failed'
  | 'termination_pending_fast'
  | 'termination_pending_immediate'
  | 'terminated';

/**
 * The status as compute_ctl prints it (its `Display`: kebab-case), used in
 * messages such as `invalid compute status: configuration-pending`.
 */
export function displayStatus(status: ComputeStatus): string {
  return status.replace(/_/g, '-');
}

/** compute_ctl's `ComputeMetrics` (GET /metrics.json); fields about storage Neon has and this server has not stay 0. */
export interface ComputeMetrics {
  /** From the worker's start to the first spec received (ms). */
  wait_for_spec_ms: number;
  sync_sk_check_ms: number;
  sync_safekeepers_ms: number;
  pageserver_connect_micros: number;
  basebackup_ms: number;
  basebackup_bytes: number;
  /** From the postmaster's start to the worker's start (ms). */
  start_postgres_ms: number;
  /** Duration of the last spec application (ms). */
  config_ms: number;
  /** From the worker's start to the first `running` (ms). */
  total_startup_ms: number;
  load_ext_ms: number;
  num_ext_downloaded: number;
  largest_ext_size: number;
  total_ext_download_size: number;
  /** Specs applied since the worker started (pg_tsworker's own). */
  applies: number;
  /** Statements the last application ran (pg_tsworker's own). */
  last_apply_statements: number;
}

/** The body of GET /status (compute_ctl's `ComputeStatusResponse`). */
export interface StatusResponse {
  start_time: string;
  tenant: string | null;
  timeline: string | null;
  status: ComputeStatus;
  last_active: string | null;
  error: string | null;
}

type Listener = (status: ComputeStatus) => void;

export class ComputeState {
  private current: ComputeStatus = 'empty';
  private lastError: string | null = null;
  private active: Date | null = null;
  private readonly listeners = new Set<Listener>();
  tenant: string | null = null;
  timeline: string | null = null;
  /** Flush LSN answered by /terminate. */
  terminateLsn: string | null = null;
  readonly metrics: ComputeMetrics = {
    wait_for_spec_ms: 0,
    sync_sk_check_ms: 0,
    sync_safekeepers_ms: 0,
    pageserver_connect_micros: 0,
    basebackup_ms: 0,
    basebackup_bytes: 0,
    start_postgres_ms: 0,
    config_ms: 0,
    total_startup_ms: 0,
    load_ext_ms: 0,
    num_ext_downloaded: 0,
    largest_ext_size: 0,
    total_ext_download_size: 0,
    applies: 0,
    last_apply_statements: 0,
  };

  /**
   * @param startTime when the compute started (the postmaster's start)
   * @param workerStart when this worker started (ms since the epoch)
   */
  constructor(readonly startTime: Date, readonly workerStart: number) {}

  get status(): ComputeStatus {
    return this.current;
  }

  get error(): string | null {
    return this.lastError;
  }

  get lastActive(): Date | null {
    return this.active;
  }

  /** Move to `status`; `error` is kept only with `failed`. */
  set(status: ComputeStatus, error: string | null = null): void {
    this.current = status;
    this.lastError = status === 'failed' ? error : null;
    for (const l of [...this.listeners]) l(status);
  }

  /** Move `last_active` forward to `at`; never back. Returns true if it moved. */
  noteActivity(at: Date): boolean {
    if (this.active && at.getTime() <= this.active.getTime()) return false;
    this.active = at;
    return true;
  }

  /** Call `fn` on every status change; returns the function that stops it. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first status (the current one included) that `done` accepts. */
  until(done: (s: ComputeStatus) => boolean): Promise<ComputeStatus> {
    if (done(this.current)) return Promise.resolve(this.current);
    return new Promise((resolve) => {
      const stop = this.onChange((s) => {
        if (!done(s)) return;
        stop();
        resolve(s);
      });
    });
  }

  response(): StatusResponse {
    return {
      start_time: this.startTime.toISOString(),
      tenant: this.tenant,
      timeline: this.timeline,
      status: this.current,
      last_active: this.active ? this.active.toISOString() : null,
      error: this.lastError,
    };
  }
}
