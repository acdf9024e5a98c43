/**
 * Which etcd endpoint a request tries, and for how long, when
 * `tsworker_promoter.etcd_hosts` names several: one dead or silent endpoint
 * of a three-node etcd must cost nothing (review finding 4), and a live one
 * must keep the whole `retry_timeout`.
 *
 * Each endpoint is `unknown` (not tried yet), `good` (its last attempt
 * answered) or `failed` (its last attempt failed: refused, reset, or no
 * answer by its deadline). The etcd3 client tries the endpoints of a
 * request one after the other (`faultHandling.host` wraps each attempt):
 *
 *   - a failed endpoint is skipped while another one is not failed, and
 *     tried again by one request every ENDPOINT_RETRY_MS with a short
 *     deadline (PROBE_MS): a silent endpoint costs that much once in a while;
 *   - an attempt on a good endpoint may use what is left of the request's
 *     `retry_timeout`;
 *   - an attempt on an unknown endpoint, or on any when every one failed,
 *     gets half of retry_timeout, so that a silent one tried first leaves
 *     time for another (a refused one fails at once; a first call to an
 *     etcd that has just started can take a few hundred ms).
 *
 * With one endpoint there is nothing to choose: every attempt gets the whole
 * `retry_timeout`, as before.
 */
import { isRecoverableError } from 'etcd3';

/** How long a failed endpoint is skipped before one request tries it again. */
export const ENDPOINT_RETRY_MS = 2000;
/** The deadline of that try. */
const PROBE_MS = 150;
/** The shortest attempt. */
const MIN_ATTEMPT_MS = 100;

/** Thrown (not a recoverable error) to make the client go on to the next endpoint without trying this one. */
export class SkippedEndpoint extends Error {}

interface State {
  kind: 'unknown' | 'good' | 'failed';
  /** Date.now() of the failure, or of the last probe. */
  at: number;
}

/** The shape of a cockatiel policy as etcd3 uses it for an endpoint (it only calls `execute`). */
export interface EndpointPolicy {
  execute<T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T): Promise<T>;
}

export class Endpoints {
  private readonly state = new Map<string, State>();
  /** The endpoint whose attempt is being set up (etcd3 resolves the call options synchronously inside `execute`). */
  private current: string | null = null;
  /** When the request being made started and how long it may take (Date.now() based). */
  private requestUntil = 0;

  constructor(
    private readonly hosts: string[],
    private timeoutMs: () => number,
  ) {
    for (const h of hosts) this.state.set(h, { kind: 'unknown', at: 0 });
  }

  /** A request starts: its attempts share `ms` from now. */
  startRequest(ms: number): void {
    this.requestUntil = Date.now() + ms;
  }

  private anyUsable(except: string): boolean {
    for (const [h, s] of this.state) if (h !== except && s.kind !== 'failed') return true;
    return false;
  }

  /** The deadline (ms from now) of an attempt on the endpoint being tried. */
  attemptMs(): number {
    const total = this.timeoutMs();
    if (this.hosts.length <= 1) return total;
    const left = Math.max(MIN_ATTEMPT_MS, this.requestUntil - Date.now());
    const s = this.current ? this.state.get(this.current) : undefined;
    const share = Math.max(MIN_ATTEMPT_MS, Math.floor(total / 2));
    if (!s || s.kind === 'unknown') return Math.min(share, left);
    if (s.kind === 'good') return left;
    return this.anyUsable(this.current!) ? Math.min(PROBE_MS, left) : Math.min(share, left);
  }

  /** The policy wrapping each attempt on `host`. */
  policy(host: string): EndpointPolicy {
    return {
      execute: async <T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T): Promise<T> => {
        const s = this.state.get(host)!;
        const now = Date.now();
        if (s.kind === 'failed' && this.anyUsable(host)) {
          if (now - s.at < ENDPOINT_RETRY_MS) throw new SkippedEndpoint(`etcd endpoint ${host} failed ${now - s.at} ms ago`);
          s.at = now; // this request probes it; the others keep skipping it
        }
        this.current = host;
        try {
          const value = await fn({ signal: new AbortController().signal, attempt: 1 });
          this.state.set(host, { kind: 'good', at: 0 });
          return value;
        } catch (err) {
          if (isRecoverableError(err as Error)) this.failed(host);
          throw err;
        } finally {
          if (this.current === host) this.current = null;
        }
      },
    };
  }

  /** An attempt on `host` failed (also a stream, which etcd3 reports through `execute` with a throwing function). */
  failed(host: string): void {
    this.state.set(host, { kind: 'failed', at: Date.now() });
  }

  /** For the log: each endpoint's state. */
  describe(): string {
    return [...this.state].map(([h, s]) => `${h} ${s.kind}`).join(', ');
  }
}
