/**
 * Settings manifest: run by the postmaster, as a child process
 * (`pg_tsworker_node manifest.js <runtimeDir> <name>=<module> ...`), to
 * learn the settings each configured worker declares, so that they become
 * real configuration parameters (listed in pg_settings, checked by
 * PostgreSQL) before any worker starts.
 *
 * Output, tab-separated, no tabs or newlines inside: one line per worker
 *   worker <worker> <start: primary|standby> <instances setting, or empty>
 * one line per setting
 *   setting <worker> <name> <type> <default> <min> <max> <unit> <enum values, comma-separated> <description> <context>
 * and one line per module that could not be read:
 *   error <worker> <message>
 * Loading a module runs its top-level code, as the worker will.
 *
 * `manifest.js --launch <runtimeDir> <worker>=<module> <settings JSON>` is
 * run by tsworker.launch() before it registers a worker: it prints the
 * same lines for that one module, plus one line per bad launch setting
 *   launch_error <worker> <message>
 */
import { summarize } from './failure';
import { loadDefinition, setupResolution } from './host-entry';
import { checkLaunchSettings, type SettingSpec } from './settings';

function clean(s: unknown): string {
  return String(s ?? '').replace(/[\t\r\n]+/g, ' ');
}

function line(fields: unknown[]): string {
  return fields.map(clean).join('\t');
}

function describeSetting(worker: string, name: string, spec: SettingSpec): string {
  const numeric = spec.type === 'int' || spec.type === 'real';
  return line([
    'setting',
    worker,
    name,
    spec.type,
    spec.type === 'bool' ? (spec.default ? 'on' : 'off') : spec.default,
    numeric && spec.min !== undefined ? spec.min : '',
    numeric && spec.max !== undefined ? spec.max : '',
    numeric && spec.unit ? spec.unit : '',
    spec.type === 'enum' ? spec.values.join(',') : '',
    spec.description ?? '',
    spec.context ?? 'sighup',
  ]);
}

function main(argv: string[]): void {
  const launch = argv[0] === '--launch';
  const [runtimeDir, ...rest] = launch ? argv.slice(1) : argv;
  const entries = launch ? rest.slice(0, 1) : rest;
  setupResolution(runtimeDir);
  const out: string[] = [];
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    const worker = entry.slice(0, eq);
    const module = entry.slice(eq + 1);
    try {
      const def = loadDefinition({ module, runtimeDir });
      out.push(line(['worker', worker, def.start, def.instances ?? '']));
      for (const [name, spec] of Object.entries(def.settings)) out.push(describeSetting(worker, name, spec));
      if (launch) {
        for (const e of checkLaunchSettings(worker, def.settings, rest[1] ?? '{}').errors) out.push(line(['launch_error', worker, e]));
      }
    } catch (err) {
      out.push(line(['error', worker, summarize(err, runtimeDir)]));
    }
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main(process.argv.slice(2));
