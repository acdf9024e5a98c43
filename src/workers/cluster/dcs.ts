/**
 * The cluster's state in etcd (v3, through the `etcd3` client): reading the
 * whole cluster in one request and each conditional write a member or an
 * operator makes (the keys and their values are in dcs-records.ts).
 *
 * Every request has `retry_timeout` in all and is tried once per etcd
 * endpoint at most: a failed request is an answer ("etcd unreachable"),
 * never a wait. With several endpoints, endpoints.ts chooses which to try
 * and for how long, so that one dead or silent endpoint of a three-node
 * etcd costs nothing. Consensus is etcd's: a member takes the leader key
 * only with an atomic create, and renews it only with a compare on its
 * value and lease.
 */
import { ConstantBackoff, handleWhen, noop, retry, type IPolicy } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue } from 'etcd3';

import { Endpoints, SkippedEndpoint } from './endpoints';
import { OPERATIONS_KEPT, type ClusterConfig, type ClusterView, type FailoverRequest, type HistoryLine, type Lease, type LeaderStatus, type MemberData, type OperationLine, type SyncState } from './dcs-records';

/** A request to etcd that failed or did not answer in time. */
export class DcsError extends Error {}

/** A lease etcd no longer knows (it expired or was revoked). */
export class LeaseLostError extends DcsError {}

function parseJson<T>(kv: IKeyValue): T | null {
  try {
    return JSON.parse(kv.value.toString('utf8')) as T;
  } catch {
    return null;
  }
}

/** The cluster as its keys say (`kvs`: each key's name below the cluster's prefix). */
function viewOf(kvs: [string, IKeyValue][], revision: string): ClusterView {
  const view: ClusterView = {
    initialize: null,
    leader: null,
    members: new Map(),
    status: null,
    statusRevision: '0',
    history: [],
    sync: null,
    failover: null,
    config: null,
    revision,
  };
  for (const [name, kv] of kvs) {
    if (name === 'initialize') view.initialize = kv.value.toString('utf8');
    else if (name === 'leader') view.leader = { name: kv.value.toString('utf8'), lease: String(kv.lease) };
    else if (name === 'status') {
      view.status = parseJson(kv);
      view.statusRevision = String(kv.mod_revision);
    } else if (name === 'history') view.history = parseJson<HistoryLine[]>(kv) ?? [];
    else if (name === 'sync') {
      const s = parseJson<SyncState>(kv);
      view.sync = s ? { ...s, modRevision: String(kv.mod_revision) } : null;
    } else if (name === 'failover') {
      const f = parseJson<FailoverRequest>(kv);
      view.failover = f ? { ...f, lease: String(kv.lease), modRevision: String(kv.mod_revision) } : null;
    } else if (name === 'config') {
      view.config = parseJson<ClusterConfig>(kv);
    } else if (name.startsWith('members/')) {
      const m = parseJson<MemberData>(kv);
      if (m) view.members.set(name.slice('members/'.length), { ...m, lease: String(kv.lease) });
    }
  }
  return view;
}

export class Dcs {
  /**
   * Made on first use: etcd3 throws on an empty host list, and a member with
   * a malformed tsworker_promoter.etcd_hosts must live on to report it.
   */
  private etcd: Etcd3 | null = null;
  private readonly endpoints: Endpoints;

  /**
   * @param hosts etcd endpoints (`http://host:port`)
   * @param prefix `<namespace>/<scope>/`
   * @param timeoutMs deadline of each request
   */
  constructor(
    private readonly hosts: string[],
    readonly prefix: string,
    private timeoutMs: number,
  ) {
    this.endpoints = new Endpoints(hosts, () => this.timeoutMs);
  }

  /** The etcd client; a DcsError when the setting names no endpoint. */
  private get client(): Etcd3 {
    if (this.etcd) return this.etcd;
    const hosts = this.hosts;
    if (hosts.length === 0) throw new DcsError('tsworker_promoter.etcd_hosts names no etcd endpoint');
    this.etcd = new Etcd3({
      hosts,
      dialTimeout: this.timeoutMs,
      // reconnect within a second once etcd is back (gRPC's default backoff grows to minutes)
      grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000, 'grpc.min_reconnect_backoff_ms': 100 },
      // resolved for each attempt, inside endpoints.ts's policy: it knows which endpoint is tried
      defaultCallOptions: (ctx) => (ctx.isStream && ctx.method !== 'leaseKeepAlive' ? {} : { deadline: Date.now() + this.endpoints.attemptMs() }),
      faultHandling: {
        // one try per endpoint, no backoff: our loop is the retry
        global: hosts.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: hosts.length - 1, backoff: new ConstantBackoff(0) }) : noop,
        host: (host: string) => (hosts.length > 1 ? (this.endpoints.policy(host) as unknown as IPolicy) : noop),
        // etcd3 calls next() on it: a factory, although its type says IBackoff
        watchBackoff: new ConstantBackoff(250) as never,
      },
    });
    return this.etcd;
  }

  setTimeout(ms: number): void {
    this.timeoutMs = ms;
  }


  key(name: string): string {
    return this.prefix + name;
  }

  /** Bound any request by the deadline, retry_timeout unless given (a stream or a dial can outlive the call deadline). */
  private async bounded<T>(what: string, p: Promise<T>, ms = this.timeoutMs): Promise<T> {
    // the client reaches its first attempt after a microtask: the attempts share `ms` from now
    this.endpoints.startRequest(ms);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new DcsError(`etcd did not answer ${what} within ${ms} ms`)), ms + 50);
        }),
      ]);
    } catch (err) {
      if (err instanceof DcsError) throw err;
      if (err instanceof SkippedEndpoint) throw new DcsError(`etcd ${what}: no endpoint answered (${this.endpoints.describe()})`);
      throw new DcsError(`etcd ${what}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async grantLease(ttl: number): Promise<Lease> {
    const res = await this.bounded('granting a lease', this.client.leaseClient.leaseGrant({ TTL: ttl }));
    return { id: String(res.ID), ttl: Number(res.TTL) };
  }

  /** The TTL etcd granted to lease `id`, in seconds; null when etcd no longer knows the lease. */
  async leaseTtl(id: string): Promise<number | null> {
    const res = await this.bounded('reading a lease', this.client.leaseClient.leaseTimeToLive({ ID: id, keys: false }));
    const granted = Number(res.grantedTTL);
    return Number(res.TTL) < 0 || !(granted > 0) ? null : granted;
  }

  /**
   * Renew a lease once; resolves with its TTL in seconds, rejects with
   * LeaseLostError when etcd no longer knows it. The renewal is a stream,
   * which etcd3 opens on one endpoint without trying another: each attempt
   * gets its share of retry_timeout (a failed stream marks its endpoint
   * failed), and the next attempt goes to another endpoint.
   */
  async keepAlive(id: string): Promise<number> {
    const until = Date.now() + this.timeoutMs;
    let ttl: number | null = null;
    let failure: unknown = null;
    for (let i = 0; i < Math.max(1, this.hosts.length) && ttl === null; i++) {
      const left = until - Date.now();
      if (left <= 0) break;
      try {
        ttl = await this.keepAliveOnce(id, left);
      } catch (err) {
        failure = err;
      }
    }
    if (ttl === null) {
      if (failure instanceof DcsError) throw failure;
      throw new DcsError(`etcd did not answer renewing the lease within ${this.timeoutMs} ms`);
    }
    if (ttl <= 0) throw new LeaseLostError(`lease ${id} has expired`);
    return ttl;
  }

  /** One renewal on one endpoint (the deadline is endpoints.ts's; `ms`: what is left of retry_timeout). */
  private async keepAliveOnce(id: string, ms: number): Promise<number> {
    return this.bounded(
      'renewing the lease',
      (async () => {
        const stream = await this.client.leaseClient.leaseKeepAlive();
        try {
          return await new Promise<number>((resolve, reject) => {
            stream.on('data', (res: { TTL: string }) => resolve(Number(res.TTL)));
            stream.on('error', reject);
            stream.write({ ID: id });
          });
        } finally {
          stream.end();
        }
      })(),
      ms,
    );
  }

  /** Revoke a lease: every key attached to it (the leader key, the member key) is deleted at once. */
  async revokeLease(id: string): Promise<void> {
    await this.bounded('revoking the lease', this.client.leaseClient.leaseRevoke({ ID: id }));
  }

  /** Read every key of the cluster in one request. */
  async read(): Promise<ClusterView> {
    const res = await this.bounded('reading the cluster', this.client.getAll().prefix(this.prefix).exec());
    return viewOf(res.kvs.map((kv) => [kv.key.toString('utf8').slice(this.prefix.length), kv]), String(res.header.revision));
  }

  /**
   * A Citus formation (this client's prefix is `<namespace>/<scope>/`): every
   * group's cluster under `<prefix><group>/`, in one request (docs/citus.md).
   */
  async readGroups(): Promise<Map<number, ClusterView>> {
    const res = await this.bounded('reading the formation', this.client.getAll().prefix(this.prefix).exec());
    const byGroup = new Map<number, [string, IKeyValue][]>();
    for (const kv of res.kvs) {
      const m = /^(0|[1-9][0-9]*)\/(.+)$/.exec(kv.key.toString('utf8').slice(this.prefix.length));
      if (!m) continue;
      const g = Number(m[1]);
      if (!byGroup.has(g)) byGroup.set(g, []);
      byGroup.get(g)!.push([m[2], kv]);
    }
    return new Map([...byGroup].map(([g, kvs]) => [g, viewOf(kvs, String(res.header.revision))]));
  }

  /**
   * Publish this member's state, attached to its lease: only when the
   * member key is absent or already attached to this lease. False when
   * another lease holds it (another live process publishes under this
   * name, or this server's previous run, whose lease has not expired yet).
   */
  async touchMember(name: string, data: MemberData, lease: string): Promise<boolean> {
    const key = this.key(`members/${name}`);
    const value = JSON.stringify(data);
    const mine = await this.bounded('publishing the member', this.client.if(key, 'Lease', '==', lease).then(this.client.put(key).value(value).lease(lease)).commit());
    if (mine.succeeded) return true;
    const created = await this.bounded('publishing the member', this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value).lease(lease)).commit());
    return created.succeeded;
  }

  async initialize(sysid: string): Promise<boolean> {
    const res = await this.bounded(
      'initializing the cluster',
      this.client.if(this.key('initialize'), 'Create', '==', 0).then(this.client.put(this.key('initialize')).value(sysid)).commit(),
    );
    return res.succeeded;
  }

  /** Take the leader key if nobody holds it (atomic create); true when taken. */
  async acquireLeader(name: string, lease: string): Promise<boolean> {
    const res = await this.bounded(
      'taking the leader key',
      this.client.if(this.key('leader'), 'Create', '==', 0).then(this.client.put(this.key('leader')).value(name).lease(lease)).commit(),
    );
    return res.succeeded;
  }

  /**
   * Confirm that this member still holds the leader key with this lease, and
   * publish the leader's position; false when the key is someone else's or gone.
   */
  async updateLeader(name: string, lease: string, status: LeaderStatus): Promise<boolean> {
    const res = await this.bounded(
      'confirming the leader key',
      this.client
        .if(this.key('leader'), 'Value', '==', name)
        .and(this.key('leader'), 'Lease', '==', lease)
        .then(this.client.put(this.key('status')).value(JSON.stringify(status)))
        .commit(),
    );
    return res.succeeded;
  }

  /**
   * Delete the leader key of a leader whose lease ran out as this member
   * sees it (expiry.ts): only if the key is still `name`'s under `lease`
   * and `status` is still at `statusRev`; then revoke that lease (its
   * member key goes too). True when deleted.
   */
  async expireLeader(name: string, lease: string, statusRev: string): Promise<boolean> {
    const res = await this.bounded(
      'deleting the leader key of an expired lease',
      this.client
        .if(this.key('leader'), 'Value', '==', name)
        .and(this.key('leader'), 'Lease', '==', lease)
        .and(this.key('status'), 'Mod', '==', statusRev)
        .then(this.client.delete().key(this.key('leader')))
        .commit(),
    );
    if (res.succeeded) await this.revokeLease(lease).catch(() => undefined);
    return res.succeeded;
  }

  /** Delete the leader key if this member holds it. */
  async deleteLeader(name: string): Promise<boolean> {
    const res = await this.bounded(
      'releasing the leader key',
      this.client.if(this.key('leader'), 'Value', '==', name).then(this.client.delete().key(this.key('leader'))).commit(),
    );
    return res.succeeded;
  }

  /** Append a line to `history` (compare-and-set on its revision; retried on a race). */
  async appendHistory(line: HistoryLine): Promise<void> {
    await this.updateJson<HistoryLine[]>('history', 'history', (prev) => [...(prev ?? []), line]);
  }

  /** Append a line to `operations`, keeping the last OPERATIONS_KEPT (compare-and-set; retried on a race). */
  async appendOperation(line: OperationLine): Promise<void> {
    await this.updateJson<OperationLine[]>('operations', 'operations', (prev) => [...(prev ?? []), line].slice(-OPERATIONS_KEPT));
  }

  /** The lines of `operations`, oldest first ([] when there are none). */
  async operations(): Promise<OperationLine[]> {
    const kvs = (await this.bounded('reading the operations', this.client.get(this.key('operations')).exec())).kvs;
    return kvs.length ? (parseJson<OperationLine[]>(kvs[0]) ?? []) : [];
  }

  /**
   * Replace the JSON value of key `name` with `next(previous)` (null: leave
   * it as it is), by compare-and-set on the key's revision, tried again
   * after a random pause of up to 50 ms when another writer came first (up
   * to 30 tries: enough for dozens of writers at once). Returns the
   * previous value. `what` names the key in errors.
   */
  private async updateJson<T>(name: string, what: string, next: (prev: T | null) => T | null): Promise<T | null> {
    for (let i = 0; i < 30; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 5 + Math.random() * 45));
      const kvs = (await this.bounded(`reading the ${what}`, this.client.get(this.key(name)).exec())).kvs;
      const prev = kvs.length ? parseJson<T>(kvs[0]) : null;
      const value = next(prev);
      if (value === null) return prev;
      const cmp = kvs.length
        ? this.client.if(this.key(name), 'Mod', '==', String(kvs[0].mod_revision))
        : this.client.if(this.key(name), 'Create', '==', 0);
      const res = await this.bounded(`writing the ${what}`, cmp.then(this.client.put(this.key(name)).value(JSON.stringify(value))).commit());
      if (res.succeeded) return prev;
    }
    throw new DcsError(`the ${name} key kept changing under this member`);
  }

  /** Write `sync` if its revision is still `modRevision` (null: if it does not exist); true when written. */
  async writeSync(state: SyncState, modRevision: string | null): Promise<boolean> {
    const cmp = modRevision
      ? this.client.if(this.key('sync'), 'Mod', '==', modRevision)
      : this.client.if(this.key('sync'), 'Create', '==', 0);
    const res = await this.bounded('writing the synchronous state', cmp.then(this.client.put(this.key('sync')).value(JSON.stringify(state))).commit());
    return res.succeeded;
  }

  /** Delete `sync` (synchronous mode turned off). */
  async deleteSync(): Promise<void> {
    await this.bounded('deleting the synchronous state', this.client.delete().key(this.key('sync')).exec());
  }

  /**
   * Post an operator's request in `failover`, attached to a new lease of
   * `ttl` seconds (it vanishes by itself after its deadline): only if there
   * is none, or if the one there is still at `modRevision` (a finished
   * request being replaced). True when posted.
   */
  async postFailover(req: FailoverRequest, ttl: number, modRevision: string | null): Promise<boolean> {
    const lease = await this.grantLease(ttl);
    const cmp = modRevision
      ? this.client.if(this.key('failover'), 'Mod', '==', modRevision)
      : this.client.if(this.key('failover'), 'Create', '==', 0);
    const res = await this.bounded('posting the request', cmp.then(this.client.put(this.key('failover')).value(JSON.stringify(req)).lease(lease.id)).commit());
    if (!res.succeeded) await this.revokeLease(lease.id).catch(() => undefined);
    return res.succeeded;
  }

  /** Record progress in `failover` (same request id only), keeping its lease. False when the request is gone or replaced. */
  async updateFailover(req: FailoverRequest, lease: string): Promise<boolean> {
    const kvs = (await this.bounded('reading the request', this.client.get(this.key('failover')).exec())).kvs;
    const cur = kvs.length ? parseJson<FailoverRequest>(kvs[0]) : null;
    if (!cur || cur.id !== req.id) return false;
    const res = await this.bounded(
      'recording the request\'s progress',
      this.client
        .if(this.key('failover'), 'Mod', '==', String(kvs[0].mod_revision))
        .then(this.client.put(this.key('failover')).value(JSON.stringify(req)).lease(lease))
        .commit(),
    );
    return res.succeeded;
  }

  /** Delete `failover` if it still holds request `id`; returns the state it was in (null: not there). */
  async deleteFailover(id: string): Promise<FailoverRequest['state'] | null> {
    const kvs = (await this.bounded('reading the request', this.client.get(this.key('failover')).exec())).kvs;
    const cur = kvs.length ? parseJson<FailoverRequest>(kvs[0]) : null;
    if (!cur || cur.id !== id) return null;
    await this.bounded(
      'deleting the request',
      this.client.if(this.key('failover'), 'Mod', '==', String(kvs[0].mod_revision)).then(this.client.delete().key(this.key('failover'))).commit(),
    );
    return cur.state;
  }

  /**
   * Switchover: give the leader key to `to`, attached to `to`'s member
   * lease, if `from` still holds it with `fromLease`; record the request's
   * new state in the same transaction. True when handed over.
   */
  async handOver(from: string, fromLease: string, to: string, toLease: string, req: FailoverRequest, reqLease: string): Promise<boolean> {
    const res = await this.bounded(
      'handing the leader key over',
      this.client
        .if(this.key('leader'), 'Value', '==', from)
        .and(this.key('leader'), 'Lease', '==', fromLease)
        .then(
          this.client.put(this.key('leader')).value(to).lease(toLease),
          this.client.put(this.key('failover')).value(JSON.stringify(req)).lease(reqLease),
        )
        .commit(),
    );
    return res.succeeded;
  }

  /**
   * Write `config` (maintenance mode) unless it is already in that pause
   * state (compare-and-set, tried again when another writer came first);
   * returns the previous value.
   */
  async setConfig(config: ClusterConfig): Promise<ClusterConfig | null> {
    // the same pause state is not written again: paused_at and paused_by say when and by whom it began
    return this.updateJson<ClusterConfig>('config', 'configuration', (prev) => ((prev?.pause === true) === (config.pause === true) ? null : config));
  }

  /**
   * Call `onChange` at once whenever the leader key, `status`, an
   * operator's request (`failover`) or `config` (pause/resume) changes
   * (put or delete), so that the
   * loop need not wait for its next run. Resolves once both watches are established,
   * which takes as long as etcd is unreachable (the client keeps trying
   * every endpoint): do not wait for it. The watches are re-established by
   * the client when etcd comes back.
   */
  async watchLeader(onChange: (what: 'put' | 'delete', value: string | null, key: 'leader' | 'failover' | 'status' | 'config', kv: { lease: string; modRevision: string } | null) => void): Promise<() => void> {
    const watchers = await Promise.all(
      (['leader', 'failover', 'status', 'config'] as const).map(async (k) => {
        const watcher = await this.client.watch().key(this.key(k)).create();
        watcher.on('put', (kv) => onChange('put', kv.value.toString('utf8'), k, { lease: String(kv.lease), modRevision: String(kv.mod_revision) }));
        watcher.on('delete', () => onChange('delete', null, k, null));
        watcher.on('error', () => undefined);
        return watcher;
      }),
    );
    return () => {
      for (const w of watchers) w.cancel().catch(() => undefined);
    };
  }

  close(): void {
    this.etcd?.close();
  }
}
