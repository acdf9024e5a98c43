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
 * `manifest.js --launch <runtimeDir> <worker>=<module> <settings JSON>` is
 * run by tsworker.launch() and tsworker.restart() before they start a
 * worker: the same document for that one module, with `launch_errors`
 * naming every bad setting.
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
import { checkLaunchSettings, type SettingSpec } from './settings';

/** One declared setting, as the shim defines it (DefineCustom*Variable). */
export interface ManifestSetting {
  name: string;
  type: SettingSpec['type'];
  /** The default as PostgreSQL's text for it: a number, `on`/`off`, a value. */
  default: string;
  /** Bounds of int/real settings, absent when unbounded. */
  min?: number;
  max?: number;
  /** Base unit of int/real settings (ms, s, min, B, kB, MB). */
  unit?: string;
  /** The values of an enum setting. */
  values?: string[];
  description: string;
  context: 'sighup' | 'postmaster';
  /** Readable by superusers only (GUC_SUPERUSER_ONLY); absent when not. */
  superuser_only?: boolean;
}

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
  /** --launch only: one message per bad launch setting. */
  launch_errors?: string[];
}

function describeSetting(name: string, spec: SettingSpec): ManifestSetting {
  const out: ManifestSetting = {
    name,
    type: spec.type,
    default: spec.type === 'bool' ? (spec.default ? 'on' : 'off') : String(spec.default),
    description: spec.description ?? '',
    context: spec.context ?? 'sighup',
  };
  if (spec.type === 'int' || spec.type === 'real') {
    if (spec.min !== undefined) out.min = spec.min;
    if (spec.max !== undefined) out.max = spec.max;
    if (spec.unit) out.unit = spec.unit;
  }
  if (spec.type === 'enum') out.values = [...spec.values];
  if (spec.superuserOnly) out.superuser_only = true;
  return out;
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

function describeWorker(worker: string, module: string, runtimeDir: string, launchSettings?: string): ManifestWorker {
  try {
    const def = withoutExit(() => loadDefinition({ module, runtimeDir }));
    const out: ManifestWorker = {
      worker,
      start: def.start,
      settings: Object.entries(def.settings).map(([name, spec]) => describeSetting(name, spec)),
    };
    if (def.instances) out.instances = def.instances;
    if (launchSettings !== undefined) out.launch_errors = checkLaunchSettings(worker, def.settings, launchSettings).errors;
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
  const launch = args[0] === '--launch';
  const [runtimeDir, ...rest] = launch ? args.slice(1) : args;
  const entries = launch ? rest.slice(0, 1) : rest;
  setupResolution(runtimeDir);
  // Writes to a pipe are synchronous on Linux: each line is out before the
  // next module runs.
  if (lines) stdout(JSON.stringify({ ready: true }) + '\n');
  const workers = entries.map((entry) => {
    const eq = entry.indexOf('=');
    const worker = describeWorker(entry.slice(0, eq), entry.slice(eq + 1), runtimeDir, launch ? rest[1] ?? '{}' : undefined);
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
