/**
 * `pg_tsworker check [name=]module ...`: what a worker author runs before
 * the server loads a module. Installed as `$(pg_config --bindir)/pg_tsworker`,
 * a script that runs this file with pg_tsworker_node (Node 18, as the
 * workers). See docs/authoring.md.
 *
 * For each module: type-check it strictly against the installed runtime
 * (typecheck.ts, with the floating-promise rule of floating.ts), load it
 * as the server does (load.ts), print the parameters it declares. Problems
 * are printed as `file:line:column: message`. Exit status: 0 when no
 * module has a problem, 1 when one has, 2 for a usage error.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { ManifestSetting, ManifestWorker } from '../runtime/manifest';
import { isModuleFile, MODULE_SUFFIXES, RUNTIME_DIR } from '../runtime/modules';
import { loadModule } from './load';
import { formatProblem, type Problem } from './problem';
import { loadTypeScript, typeCheck } from './typecheck';

const USAGE = `usage: pg_tsworker check [name=]MODULE ...
       pg_tsworker --help

Checks worker modules before the server loads them:
  - type-checks each module strictly (TypeScript, Node 18 types, the
    installed pg-tsworker's declarations; packages resolve from the
    module's directory, then from those shipped with the runtime);
  - reports promises that are neither awaited nor handled (\`w.wait();\`);
  - loads it as the server will (Node 18, CommonJS, tsx), checks its
    default export (defineWorker) and its settings declarations;
  - prints the parameters (tsworker_<name>.<setting>) it declares.

MODULE is a ${MODULE_SUFFIXES.join(', ')} file. A worker is named as in
tsworker.workers: \`name=\` before the path, else the file's name without
its extension.

Problems are printed as file:line:column: message.
Exit status: 0 no problem, 1 problems found, 2 usage error.`;

const WORKER_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const VARTYPE: Record<ManifestSetting['type'], string> = { int: 'integer', real: 'real', bool: 'bool', string: 'string', enum: 'enum' };

class UsageError extends Error {}

interface Target {
  name: string;
  file: string;
}

function parseTarget(arg: string, cwd: string): Target {
  const eq = arg.indexOf('=');
  const explicit = eq > 0 && !arg.slice(0, eq).includes('/');
  const file = path.resolve(cwd, explicit ? arg.slice(eq + 1) : arg);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) {
    throw new UsageError(`${arg}: is a directory; a module is a ${MODULE_SUFFIXES.join(', ')} file`);
  }
  if (!isModuleFile(file)) throw new UsageError(`${arg}: a module is a ${MODULE_SUFFIXES.join(', ')} file`);
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new UsageError(`${arg}: no such file`);
  return { name: explicit ? arg.slice(0, eq) : path.basename(file, path.extname(file)), file };
}

/** One declared parameter, as pg_settings will show it. */
function describeParameter(worker: string, s: ManifestSetting): string {
  const parts = [VARTYPE[s.type], `default ${s.type === 'string' ? `'${s.default}'` : s.default}`];
  if (s.unit) parts.push(`unit ${s.unit}`);
  if (s.min !== undefined) parts.push(`min ${s.min}`);
  if (s.max !== undefined) parts.push(`max ${s.max}`);
  if (s.values) parts.push(`values ${s.values.join('|')}`);
  parts.push(s.context);
  return `  tsworker_${worker}.${s.name}  ${parts.join(', ')}${s.description ? `  -- ${s.description}` : ''}`;
}

function describeWorker(name: string, w: ManifestWorker): string[] {
  const settings = w.settings ?? [];
  const lines = [
    `worker "${name}": starts ${w.start === 'standby' ? 'on a standby (hot standby) and on a primary' : 'on a primary'}` +
      (w.instances ? `; tsworker_${name}.${w.instances} instances named ${name}1, ${name}2 ...` : ''),
  ];
  if (settings.length === 0) lines.push('  declares no parameters');
  else lines.push(`  declares ${settings.length} parameter${settings.length === 1 ? '' : 's'}:`, ...settings.map((s) => describeParameter(name, s)));
  return lines;
}

/** The program of the module checked last (typeCheck reuses its declarations). */
let lastProgram: ReturnType<typeof typeCheck>['program'] | undefined;

/** Check one module; print what was found; true when it has no problem. */
function checkOne(target: Target, cwd: string, out: (line: string) => void, duplicate: boolean): boolean {
  const problems: Problem[] = [];
  if (duplicate) {
    problems.push({
      file: target.file,
      line: 1,
      column: 1,
      message: `error: the worker name "${target.name}" is given twice (tsworker.workers refuses a second worker of one name): name one of them, name=${target.file}`,
    });
  }
  if (!WORKER_NAME.test(target.name)) {
    problems.push({
      file: target.file,
      line: 1,
      column: 1,
      message: `error: "${target.name}" is not a worker name (letters, digits, _; at most 63): name it, as in tsworker.workers: name=${target.file}`,
    });
  }
  const typed = typeCheck(target.file, RUNTIME_DIR, lastProgram);
  lastProgram = typed.program;
  problems.push(...typed.problems);
  let worker: ManifestWorker | undefined;
  if (!typed.syntaxErrors) {
    const loaded = loadModule(process.execPath, RUNTIME_DIR, WORKER_NAME.test(target.name) ? target.name : 'worker', target.file, typed.defaultExport ?? { line: 1, column: 1 });
    if (loaded.stderr.trim()) out(loaded.stderr.trimEnd().split('\n').map((l) => `  (output while loading) ${l}`).join('\n'));
    problems.push(...loaded.problems);
    worker = loaded.worker;
  }
  problems.sort((a, b) => (a.file === b.file ? a.line - b.line || a.column - b.column : a.file < b.file ? -1 : 1));
  for (const p of problems) out(formatProblem(p, cwd));
  if (worker && WORKER_NAME.test(target.name)) for (const line of describeWorker(target.name, worker)) out(line);
  const shown = formatProblem({ file: target.file, line: 0, column: 0, message: '' }, cwd).replace(/:0:0: $/, '');
  if (typed.syntaxErrors) out(`${shown}: not loaded: the server would fail on the same syntax errors`);
  out(problems.length === 0 ? `${shown}: ok` : `${shown}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  return problems.length === 0;
}

/** Run the command line `argv` (without the program); returns the exit status. */
export function main(argv: string[], cwd = process.cwd(), out = (line: string) => console.log(line)): number {
  try {
    if (argv.length === 0) throw new UsageError('no command');
    if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      out(USAGE);
      return 0;
    }
    if (argv[0] !== 'check') throw new UsageError(`unknown command "${argv[0]}"`);
    const args = argv.slice(1);
    if (args.includes('--help') || args.includes('-h')) {
      out(USAGE);
      return 0;
    }
    const option = args.find((a) => a.startsWith('-'));
    if (option) throw new UsageError(`unknown option "${option}"`);
    if (args.length === 0) throw new UsageError('no module to check');
    const targets = args.map((a) => parseTarget(a, cwd));
    const ts = loadTypeScript(RUNTIME_DIR);
    out(`pg_tsworker check: Node ${process.versions.node}, TypeScript ${ts.version}, runtime ${RUNTIME_DIR}`);
    let ok = true;
    const seen = new Set<string>();
    for (const t of targets) {
      const key = t.name;
      ok = checkOne(t, cwd, out, seen.has(key)) && ok;
      seen.add(key);
    }
    return ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`pg_tsworker: ${err.message}\n${USAGE.split('\n\n')[0]}\nTry "pg_tsworker --help".`);
    return 2;
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
