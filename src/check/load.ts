/**
 * The loading half of `pg_tsworker check`: the module is loaded the way the
 * server loads it before it starts any worker, by the same program: the
 * manifest child (src/runtime/manifest.ts) run by `pg_tsworker_node`, the
 * Node 18 executable built from the workers' libnode, with the
 * environment, heap limit and time limit native/shim/node_child.c gives it.
 * It loads the module as CommonJS (TypeScript through tsx), checks its
 * default export and settings declarations (defineWorker), and prints what
 * the module declares.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import type { ManifestWorker } from '../runtime/manifest';
import type { Problem } from './problem';

/** The manifest child's time limit (native/shim/manifest.c: TSW_MANIFEST_TIMEOUT_MS). */
const MANIFEST_TIMEOUT_MS = 30_000;

export interface LoadResult {
  /** What the module declares, when it loaded. */
  worker?: ManifestWorker;
  problems: Problem[];
  /** What the module printed while loading (the server log would get it). */
  stderr: string;
}

/** `file:line:col: message`, `file:line: message` or `message (at file:line:col)`. */
const AT_START = /^(\/[^:]+):(\d+)(?::(\d+))?: (.*)$/s;
const AT_END = /^(.*) \(at (\/[^:]+):(\d+):(\d+)\)$/s;

/**
 * A load error (failure.ts's one-line summary) as a problem: at the place
 * it names, else at `fallback` (the default export, or the top of the file).
 */
function loadProblem(error: string, file: string, fallback: { line: number; column: number }): Problem {
  const start = AT_START.exec(error);
  if (start) {
    return { file: start[1], line: Number(start[2]), column: start[3] ? Number(start[3]) : 1, message: `error (load): ${start[4]}` };
  }
  const end = AT_END.exec(error);
  if (end) return { file: end[2], line: Number(end[3]), column: Number(end[4]), message: `error (load): ${end[1]}` };
  return { file, ...fallback, message: `error (load): ${error}` };
}

/** The OS user the server runs as, when the check runs as root (Debian's `postgres`). */
const SERVER_OS_USER = 'postgres';

/**
 * Who loads the module: the check's own user, or, when it runs as root,
 * the server's OS user (`postgres`), so that the server's rule on who may
 * have written a module (module-files.ts) and the file modes it can read
 * are applied as the server will.
 */
export function loaderUser(): { uid: number; gid: number; name: string } | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  let passwd: string;
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  const line = passwd.split('\n').find((l) => l.startsWith(`${SERVER_OS_USER}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), name: SERVER_OS_USER };
}

/**
 * Load `file` (absolute) as worker `name` with the runtime in `runtimeDir`,
 * using `nodeExe` (pg_tsworker_node).
 */
export function loadModule(
  nodeExe: string,
  runtimeDir: string,
  name: string,
  file: string,
  fallback: { line: number; column: number },
): LoadResult {
  const manifest = path.join(runtimeDir, 'dist', 'runtime', 'manifest.js');
  const user = loaderUser();
  const run = spawnSync(nodeExe, ['--max-old-space-size=256', manifest, runtimeDir, `${name}=${file}`], {
    env: { LC_ALL: 'C', ESBUILD_WORKER_THREADS: '0' },
    encoding: 'utf8',
    timeout: MANIFEST_TIMEOUT_MS,
    // the server's working directory is its data directory: nothing of the module's
    cwd: user ? '/' : path.dirname(file),
    maxBuffer: 64 * 1024 * 1024,
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  const stderr = run.stderr ?? '';
  const failed = (why: string): LoadResult => ({ problems: [{ file, ...fallback, message: `error (load): ${why}` }], stderr });
  const limit = `within ${MANIFEST_TIMEOUT_MS / 1000} s (the server's limit): its top-level code does not finish`;
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') return failed(`the module did not load ${limit}`);
  if (run.error) return failed(`could not run ${nodeExe}${user ? ` as ${user.name}` : ''}: ${run.error.message}`);
  if (run.signal) return failed(`loading was stopped by ${run.signal}${run.signal === 'SIGTERM' ? `: the module did not load ${limit}` : ''}`);
  let doc: { workers?: ManifestWorker[] };
  try {
    doc = JSON.parse(run.stdout) as { workers?: ManifestWorker[] };
  } catch {
    return failed(
      `loading the module ended the process (exit status ${run.status}) before it was loaded: does its top-level code call process.exit()?` +
        (stderr ? ` Last output: ${stderr.trim().split('\n').slice(-1)[0]}` : ''),
    );
  }
  const worker = doc.workers?.[0];
  if (!worker) return failed('the loader gave no answer for the module');
  if (worker.error) return { problems: [loadProblem(worker.error, file, fallback)], stderr };
  return { worker, problems: [], stderr };
}
