/**
 * What a member does this loop, given the cluster's state in etcd: a pure
 * function of the view, this server's state and this process's lease (the
 * member loop, member.ts, acts on the answer).
 *
 * Two rules keep a cluster from getting two leaders:
 *  - only a server that is not in recovery initializes an uninitialized
 *    scope (as Patroni: a replica never bootstraps), so a standby with a
 *    mistyped `tsworker_promoter.scope` waits instead of promoting;
 *  - a member leads only under the lease this process granted: the leader
 *    key holding this member's name under another lease is this server's
 *    previous run (until that lease expires) or another server with the
 *    same `tsworker_promoter.name`, and is never taken over.
 */
import type { ClusterView } from './dcs-records';

export type Duty =
  | { kind: 'initialize' }
  | { kind: 'wait'; why: string }
  | { kind: 'foreign'; why: string }
  | { kind: 'lead' }
  | { kind: 'follow'; leader: string }
  | { kind: 'elect' };

/**
 * @param view the cluster as read from etcd
 * @param me this member's name, this server's recovery state and system identifier
 * @param lease the lease this process granted (null: none yet)
 * @param scope `tsworker_promoter.scope`, for the messages
 */
export function dutyOf(view: Pick<ClusterView, 'initialize' | 'leader'>, me: { name: string; recovery: boolean; sysid: string }, lease: string | null, scope: string): Duty {
  if (view.initialize === null) {
    if (!me.recovery) return { kind: 'initialize' };
    return {
      kind: 'wait',
      why: `cluster "${scope}" is not initialized in etcd: a server in recovery never initializes one, so this standby waits for a primary to do it (check tsworker_promoter.scope: it must be the same on every member)`,
    };
  }
  if (view.initialize !== me.sysid) {
    return { kind: 'foreign', why: `this data directory (system identifier ${me.sysid}) is not cluster "${scope}"'s (${view.initialize}): it takes part in nothing` };
  }
  const leader = view.leader;
  if (!leader) return { kind: 'elect' };
  if (leader.name !== me.name) return { kind: 'follow', leader: leader.name };
  if (lease !== null && leader.lease === lease) return { kind: 'lead' };
  return {
    kind: 'wait',
    why: `the leader key holds this member's name "${me.name}" under lease ${leader.lease}, which this process did not create (this server's previous run, until its lease expires, or another server with the same tsworker_promoter.name): not leading, waiting`,
  };
}
