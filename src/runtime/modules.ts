/**
 * Loading user modules (workers, hooks): CommonJS, with TypeScript compiled
 * by tsx and kept in the compile cache (compile-cache.ts). Which files are
 * modules is defined once, in module-kinds.json (the shim's check of
 * tsworker.workers reads the same).
 *
 * A TypeScript file found in the cache is compiled by V8 from the cached
 * code: tsx and esbuild (about 170 ms to load, with esbuild's service
 * process) are not loaded at all. They are registered, as before, the first
 * time something needs them: a TypeScript file not in the cache, a
 * `require` that Node.js alone cannot resolve (`./util.js` naming
 * `util.ts`, tsconfig paths), or a file Node.js cannot load as CommonJS (an
 * ES module). From then on tsx loads everything, as it did before the
 * cache, except that TypeScript files still come from the cache.
 */
import Module from 'module';
import * as fs from 'fs';
import * as path from 'path';

import { CompileCache, type CacheLog } from './compile-cache';
import { moduleFileProblem } from './module-files';
import kinds from './module-kinds.json';

/** Suffixes of module files, e.g. `.ts`. */
export const MODULE_SUFFIXES: readonly string[] = Object.freeze([...kinds.suffixes]);
const TYPESCRIPT_SUFFIXES: readonly string[] = kinds.typescript;

/** Is `file` a module file by its suffix? */
export function isModuleFile(file: string): boolean {
  return MODULE_SUFFIXES.includes(path.extname(file));
}

/** The installed runtime directory (<sharedir>/pg_tsworker): dist/runtime/.. /.. */
export const RUNTIME_DIR = path.resolve(__dirname, '..', '..');

type Loader = (module: NodeModule, filename: string) => void;
type CompilingModule = NodeModule & { _compile(code: string, filename: string): unknown };
type ModuleInternals = typeof Module & {
  _extensions: Record<string, Loader>;
  _resolveFilename(request: string, parent: unknown, isMain: boolean, options?: unknown): string;
};
const M = Module as ModuleInternals;

let cacheLog: CacheLog = { debug: () => undefined, warning: () => undefined };

/** Where the compile cache tells hits, misses (DEBUG1) and a cache it cannot write (WARNING). */
export function setModuleLog(log: CacheLog): void {
  cacheLog = log;
}

/** Set once TypeScript loading is installed. */
let state: { runtimeDir: string; cache: CompileCache; tsx?: Record<string, Loader> } | undefined;

/** Register tsx (once): its loaders for TypeScript are kept for cache misses, ours stay in front. */
function registerTsx(): Record<string, Loader> {
  if (!state) throw new Error('TypeScript loading is not installed');
  if (state.tsx) return state.tsx;
  // esbuild would otherwise start a worker thread, created after signals
  // were unblocked; keep every thread of the process PostgreSQL's.
  process.env.ESBUILD_WORKER_THREADS = '0';
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const tsx = require(path.join(state.runtimeDir, 'node_modules', 'tsx', 'dist', 'cjs', 'api', 'index.cjs')) as {
    register(): unknown;
  };
  tsx.register();
  // tsx registers `.ts` but not `.cts` (it compiles .cts files through the
  // same loader): a suffix it left alone still has ours, which must not
  // call itself on a cache miss.
  const tsxLoader = (s: string): Loader => (M._extensions[s] !== loadTypeScript && M._extensions[s]) || M._extensions['.ts'];
  state.tsx = Object.fromEntries(TYPESCRIPT_SUFFIXES.map((s) => [s, tsxLoader(s)]));
  if (Object.values(state.tsx).some((l) => l === loadTypeScript || typeof l !== 'function')) {
    throw new Error('tsx did not register a loader for TypeScript files');
  }
  for (const s of TYPESCRIPT_SUFFIXES) M._extensions[s] = loadTypeScript;
  return state.tsx;
}

/** The loader of TypeScript files: from the cache, or compiled by tsx and stored. */
function loadTypeScript(module: NodeModule, filename: string): void {
  const { cache } = state!;
  const mod = module as CompilingModule;
  const source = fs.readFileSync(filename, 'utf8');
  const cached = cache.read(filename, source);
  if (cached !== undefined) {
    mod._compile(cached, filename);
    return;
  }
  const tsxLoader = registerTsx()[path.extname(filename)];
  // tsx reads, compiles and hands the code to module._compile: take it there.
  const compile = mod._compile;
  mod._compile = function (code: string, name: string) {
    mod._compile = compile;
    // stored only if the file did not change under tsx
    if (name === filename && fs.readFileSync(filename, 'utf8') === source) cache.write(filename, source, code);
    return compile.call(this, code, name);
  };
  try {
    tsxLoader(module, filename);
  } finally {
    mod._compile = compile;
  }
}

/** Install TypeScript loading (once): the cache first, tsx when something needs it. */
function installTypeScript(runtimeDir: string): void {
  if (state) return;
  const log: CacheLog = { debug: (m) => cacheLog.debug(m), warning: (m) => cacheLog.warning(m) };
  state = { runtimeDir, cache: CompileCache.forServer(runtimeDir, log) };
  // What tsx.register() does too: compiled code carries inline source maps,
  // so that stack traces point at .ts lines.
  process.setSourceMapsEnabled(true);
  for (const s of TYPESCRIPT_SUFFIXES) M._extensions[s] = loadTypeScript;

  // An ES module (ERR_REQUIRE_ESM, or `import` in a .js file): tsx loads it.
  const loadJs = M._extensions['.js'];
  M._extensions['.js'] = function (module, filename) {
    try {
      return loadJs.call(this, module, filename);
    } catch (err) {
      if (state?.tsx || !needsTsx(err)) throw err;
      return registerTsx() && M._extensions['.js'].call(this, module, filename);
    }
  };
  // A request of a TypeScript file that Node.js alone cannot resolve
  // (`./util.js` for util.ts, tsconfig paths): tsx resolves it.
  const resolve = M._resolveFilename;
  M._resolveFilename = function (request, parent, isMain, options) {
    try {
      return resolve.call(this, request, parent, isMain, options);
    } catch (err) {
      const from = (parent as { filename?: unknown } | undefined)?.filename;
      const fromTypeScript = typeof from === 'string' && TYPESCRIPT_SUFFIXES.includes(path.extname(from));
      if (state?.tsx || !fromTypeScript || (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      registerTsx();
      return M._resolveFilename.call(this, request, parent, isMain, options);
    }
  };
}

/** Is `err`, from loading a .js file as CommonJS, one tsx would have avoided? */
function needsTsx(err: unknown): boolean {
  if ((err as NodeJS.ErrnoException)?.code === 'ERR_REQUIRE_ESM') return true;
  return err instanceof SyntaxError && /\b(import|export)\b/.test(err.message);
}

let guarded = false;

/**
 * Apply the rule of module-files.ts to every file loaded from outside the
 * runtime (once): a file someone else can write is not loaded.
 */
function guardModuleFiles(runtimeDir: string): void {
  if (guarded) return;
  guarded = true;
  const inRuntime = path.resolve(runtimeDir) + path.sep;
  const okDirs = new Set<string>();
  const proto = Module.prototype as unknown as { load(filename: string): void };
  const load = proto.load;
  proto.load = function (filename: string) {
    if (!filename.startsWith(inRuntime)) {
      const problem = moduleFileProblem(filename, undefined, okDirs);
      if (problem) throw Object.assign(new Error(`refusing to load ${problem}`), { code: 'ERR_TSWORKER_MODULE_FILE' });
    }
    return load.call(this, filename);
  };
}

/** require() a module file; .ts/.cts files through the compile cache or tsx. */
export function requireModule(file: string, runtimeDir: string = RUNTIME_DIR): unknown {
  guardModuleFiles(runtimeDir);
  if (TYPESCRIPT_SUFFIXES.includes(path.extname(file))) installTypeScript(runtimeDir);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require(file);
}
