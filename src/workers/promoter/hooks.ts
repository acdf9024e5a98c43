/**
 * The promoter's hooks: `before_promote` (a module whose default export may
 * veto) and `on_promote` (a command, or a module, run once after promotion
 * with the event as JSON).
 */
import { spawn } from 'child_process';
import * as path from 'path';

import { isModuleFile, requireModule } from '../../runtime/modules';

/** What hooks receive about a promotion. */
export interface PromotionEvent {
  kind: 'promotion';
  worker: string;
  oldPrimary: string;
  reason: string;
  failures: number;
  /** LSN received from the old primary when deciding. */
  lsn: string | null;
  /** Timeline after promotion (null before it). */
  newTimeline: number | null;
  /** Milliseconds from the first failed check to the decision, and of pg_promote(). */
  durations: { detectionMs: number; promoteMs?: number };
  at: string;
}

/** A hook setting names a module (else it is a command): an absolute path of a module file, without spaces. */
function isModule(spec: string): boolean {
  return path.isAbsolute(spec) && isModuleFile(spec) && !/\s/.test(spec);
}

function loadHook(file: string): (event: PromotionEvent) => unknown {
  const mod = requireModule(file) as { default?: unknown } | ((e: PromotionEvent) => unknown);
  const fn = typeof mod === 'function' ? mod : (mod as { default?: unknown }).default;
  if (typeof fn !== 'function') throw new Error(`hook module ${file} has no default export function`);
  return fn as (event: PromotionEvent) => unknown;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Ask `before_promote`. Returns null to go ahead, or why not: the module
 * returned false (or a string, the reason), threw, or took too long.
 */
export async function beforePromote(file: string, event: PromotionEvent, timeoutMs: number): Promise<string | null> {
  if (!file) return null;
  try {
    const verdict = await within(Promise.resolve(loadHook(file)(event)), timeoutMs, 'before_promote');
    if (verdict === false) return `vetoed by before_promote (${file})`;
    if (typeof verdict === 'string') return `vetoed by before_promote: ${verdict}`;
    return null;
  } catch (err) {
    return `before_promote failed, so no promotion: ${(err as Error).message}`;
  }
}

/** Run `on_promote` once; resolves with a line for the log. */
export async function onPromote(spec: string, event: PromotionEvent, timeoutMs: number): Promise<string> {
  const json = JSON.stringify(event);
  if (isModule(spec)) {
    await within(Promise.resolve(loadHook(spec)(event)), timeoutMs, 'on_promote');
    return `on_promote module ${spec} ran`;
  }
  return within(
    new Promise<string>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', spec], {
        env: { ...process.env, TSWORKER_EVENT: json },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        const tail = output.trim().slice(-500);
        if (code === 0) resolve(`on_promote command exited 0${tail ? `: ${tail}` : ''}`);
        else reject(new Error(`on_promote command exited ${code}${tail ? `: ${tail}` : ''}`));
      });
      child.stdin.end(json);
    }),
    timeoutMs,
    'on_promote',
  );
}
