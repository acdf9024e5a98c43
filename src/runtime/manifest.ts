/**
 * Settings manifest: run by the postmaster, as a child process
 * (`pg_tsworker_node manifest.js <runtimeDir> <name>=<module> ...`), to
 * learn the settings each configured worker declares, so that they become
 * real configuration parameters (listed in pg_settings, checked by
 * PostgreSQL) before any worker starts.
 *
 * Output: one JSON document, `{"workers": [ManifestWorker, ...]}`, one
 * entry per worker asked for, in order (read by native/shim/manifest.c,
 * which names the same fields). Loading a module runs its top-level code,
 * as the worker will.
 *
 * tsworker.launch() and tsworker.restart() run it for the one module they
 * start; the server checks the settings given against its declarations
 * (native/shim/worker_settings.c).
 *
 * With `--lines` first (what the server runs), the output is one JSON line
 * per step instead: `{"ready":true}` once the runtime is set up, then one
 * ManifestWorker per module as soon as it is loaded. So a module that ends
 * or hangs this process costs only itself: the server keeps the answers
 * printed before it, names it, and runs a new child for the modules after
 * it (native/shim/manifest.c). `process.exit()` called while a module loads
 * throws instead of exiting, so it fails that module alone.
 */
import { summarize } from './failure';
import { loadDefinition, setupResolution } from './host-entry';
import { manifestSettings, type ManifestSetting } from './settings';

export type { ManifestSetting };

/** What one worker's module declares, or why it could not be read. */
export interface ManifestWorker {
  worker: string;
  /** When the worker runs: on a primary only, or on a standby too. */
  start?: 'primary' | 'standby';
  /** The setting that gives its number of instances, if any. */
  instances?: string;
  settings?: ManifestSetting[];
  /** The module could not be loaded: the message, with file:line:col. */
  error?: string;
}

/**
 * Run `load` with `process.exit` throwing instead of exiting: a module whose
 * top level exits (`if (!process.env.TOKEN) process.exit(1)`) fails alone.
 */
function withoutExit<T>(load: () => T): T {
  const exit = process.exit;
  process.exit = ((code?: number | string | null) => {
    throw new Error(`process.exit(${code ?? ''}) called while the module was loading`);
  }) as typeof process.exit;
  try {
    return load();
  } finally {
    process.exit = exit;
  }
}

function describeWorker(worker: string, module: string, runtimeDir: string): ManifestWorker {
  try {
    const def = withoutExit(() => loadDefinition({ module, runtimeDir }));
    const out: ManifestWorker = {
      worker,
      start: def.start,
      settings: manifestSettings(def.settings),
    };
    if (def.instances) out.instances = def.instances;
    return out;
  } catch (err) {
    return { worker, error: summarize(err, runtimeDir) };
  }
}

function main(argv: string[]): void {
  // The document is this process's only output: what a module prints while
  // it loads (console.log at its top level) goes to stderr, the server log.
  const stdout = process.stdout.write.bind(process.stdout);
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
  // A load error names the module's own line: with Node's default of ten
  // frames, a missing package's stack holds only Node's resolver, the
  // runtime's hook and tsx.
  Error.stackTraceLimit = 50;
  const lines = argv[0] === '--lines';
  const args = lines ? argv.slice(1) : argv;
  const [runtimeDir, ...entries] = args;
  setupResolution(runtimeDir);
  // Writes to a pipe are synchronous on Linux: each line is out before the
  // next module runs.
  if (lines) stdout(JSON.stringify({ ready: true }) + '\n');
  const workers = entries.map((entry) => {
    const eq = entry.indexOf('=');
    const worker = describeWorker(entry.slice(0, eq), entry.slice(eq + 1), runtimeDir);
    if (lines) stdout(JSON.stringify(worker) + '\n');
    return worker;
  });
  // Exit now: a module may leave timers or servers behind at its top level,
  // which would keep this child alive (they belong to the worker, which
  // starts them again).
  if (!lines) stdout(JSON.stringify({ workers }) + '\n');
  process.exit(0);
}

main(process.argv.slice(2));
