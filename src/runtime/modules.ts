/**
 * Loading user modules (workers, hooks): CommonJS, with TypeScript through
 * tsx, registered once.
 */
import * as path from 'path';

let tsxRegistered = false;

/** The installed runtime directory (<sharedir>/pg_tsworker): dist/runtime/.. /.. */
export const RUNTIME_DIR = path.resolve(__dirname, '..', '..');

/** require() a module file; .ts/.cts files go through tsx. */
export function requireModule(file: string, runtimeDir: string = RUNTIME_DIR): unknown {
  if (/\.c?ts$/.test(file) && !tsxRegistered) {
    // esbuild would otherwise start a worker thread, created after signals
    // were unblocked; keep every thread of the process PostgreSQL's.
    process.env.ESBUILD_WORKER_THREADS = '0';
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const tsx = require(path.join(runtimeDir, 'node_modules', 'tsx', 'dist', 'cjs', 'api', 'index.cjs')) as {
      register(): unknown;
    };
    tsx.register();
    tsxRegistered = true;
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require(file);
}
