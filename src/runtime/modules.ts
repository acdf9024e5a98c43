/**
 * Loading user modules (workers, hooks): CommonJS, with TypeScript through
 * tsx, registered once. Which files are modules is defined once, in
 * module-kinds.json (the shim's check of tsworker.workers reads the same).
 */
import * as path from 'path';

import kinds from './module-kinds.json';

/** Suffixes of module files, e.g. `.ts`. */
export const MODULE_SUFFIXES: readonly string[] = Object.freeze([...kinds.suffixes]);
const TYPESCRIPT_SUFFIXES: readonly string[] = kinds.typescript;

/** Is `file` a module file by its suffix? */
export function isModuleFile(file: string): boolean {
  return MODULE_SUFFIXES.includes(path.extname(file));
}

let tsxRegistered = false;

/** The installed runtime directory (<sharedir>/pg_tsworker): dist/runtime/.. /.. */
export const RUNTIME_DIR = path.resolve(__dirname, '..', '..');

/** require() a module file; .ts/.cts files go through tsx. */
export function requireModule(file: string, runtimeDir: string = RUNTIME_DIR): unknown {
  if (TYPESCRIPT_SUFFIXES.includes(path.extname(file)) && !tsxRegistered) {
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
