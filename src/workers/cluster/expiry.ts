/**
 * The leader's lease running out, as the other members see it: a member
 * may delete the leader key itself once `ttl` has passed since it first saw
 * the key's lease and the `status` key as they are, so that a lost leader
 * host costs `ttl`, not `ttl` plus the up to 500 ms by which etcd 3.4 checks
 * leases for expiry (docs/failover.md, "Why two primaries cannot both
 * accept writes", point 2).
 *
 * Why it is safe: the leader opens its write fence only until
 * R + ttl − ttl/4, where R is when it sent a lease renewal that was
 * followed by a successful write of `status` under the leader key (or by
 * the creation of the key) — member-core.ts, `confirmLeader`. A member
 * that sees that write does so after it happened, hence after R: ttl after
 * it first saw it, the fence has been closed for ttl/4 at least, as when
 * etcd expires the lease. The deletion is one etcd transaction that checks
 * that the key's lease and `status`'s revision are still those seen (a
 * leader that wrote `status` since keeps its key), and after it the old
 * leader cannot confirm the key again, so it cannot open its fence.
 *
 * The TTL counted is the one etcd granted to the leader's lease (asked of
 * etcd once per lease: Dcs.leaseTtl), never this member's own `ttl`
 * setting: members may be configured differently, or the setting changed
 * by a reload, and the leader's fence follows its lease's TTL. Until that
 * TTL is known nothing is due (etcd still expires the lease by itself).
 *
 * A member's window restarts whenever it lost contact with etcd for longer
 * than loop_wait + retry_timeout (while etcd elects a leader of its own,
 * for instance, which extends every lease): it counts only time in which
 * the leader could have reached etcd as well as it did.
 */
import { performance } from 'perf_hooks';

interface Seen {
  lease: string;
  /** `status`'s mod revision ('0': no such key). */
  statusRev: string;
  /** performance.now() when first seen. */
  at: number;
}

export class LeaderExpiry {
  private seen: Seen | null = null;
  private lastContact = 0;
  /** The TTL etcd granted to a lease (ms), as last asked. */
  private granted: { lease: string; ms: number } | null = null;

  constructor(private readonly gapMs: () => number) {}

  /** The leader's lease whose TTL is not known yet (ask etcd, then leaseTtl()), or null. */
  leaseToAsk(): string | null {
    return this.seen && this.granted?.lease !== this.seen.lease ? this.seen.lease : null;
  }

  /** What etcd said it granted to `lease`, in ms. */
  leaseTtl(lease: string, ms: number): void {
    this.granted = { lease, ms };
  }

  private ttlMs(): number | null {
    return this.seen && this.granted?.lease === this.seen.lease ? this.granted.ms : null;
  }

  /** What a read of the cluster (or a watch event) showed: the leader key's lease (null: no key) and `status`'s revision. */
  observe(lease: string | null, statusRev: string | null, now = performance.now()): void {
    if (lease === null) {
      this.seen = null;
      return;
    }
    const rev = statusRev ?? '0';
    if (this.seen && this.seen.lease === lease) {
      // an older revision (a read that raced a watch event) changes nothing
      if (Number(rev) <= Number(this.seen.statusRev)) return;
    }
    this.seen = { lease, statusRev: rev, at: now };
  }

  /** A watch event on `status`: a new revision under the lease last seen. */
  statusWritten(statusRev: string, now = performance.now()): void {
    if (this.seen) this.observe(this.seen.lease, statusRev, now);
  }

  /** etcd answered this member; after a gap, the window starts again. */
  contact(now = performance.now()): void {
    if (this.seen && this.lastContact !== 0 && now - this.lastContact > this.gapMs()) this.seen.at = now;
    this.lastContact = now;
  }

  /** The lease and revision to check, when the lease's TTL has passed since they were first seen; else null. */
  due(now = performance.now()): { lease: string; statusRev: string; silentMs: number; ttlMs: number } | null {
    const ttl = this.ttlMs();
    if (!this.seen || ttl === null || now - this.seen.at < ttl) return null;
    return { lease: this.seen.lease, statusRev: this.seen.statusRev, silentMs: Math.round(now - this.seen.at), ttlMs: ttl };
  }

  /** Milliseconds until due (null: nothing seen, or its TTL not known yet). */
  dueInMs(now = performance.now()): number | null {
    const ttl = this.ttlMs();
    return this.seen && ttl !== null ? this.seen.at + ttl - now : null;
  }
}
