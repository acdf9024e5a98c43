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
 */
import { loadDefinition, setupResolution } from './host-entry';
import type { SettingSpec } from './settings';

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
  const [runtimeDir, ...entries] = argv;
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
    } catch (err) {
      out.push(line(['error', worker, err instanceof Error ? err.message : String(err)]));
    }
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main(process.argv.slice(2));
