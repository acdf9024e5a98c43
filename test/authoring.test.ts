/**
 * [authoring] What docs/authoring.md promises a worker author: the npm
 * package installed with the documented command into a fresh project
 * outside the checkout, `pg_tsworker check` on good and broken modules,
 * and, on a real cluster, the parameters it prints, deploying new code,
 * pg_terminate_backend, launched workers across a restart, long work cut
 * into statements, and the tsworker_admin role after DROP EXTENSION.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, waitFor } from './harness/cluster';
import { PG_BIN, PG_CONFIG } from './harness/pg-config';

const TOP = path.join(__dirname, '..');
const DOC = fs.readFileSync(path.join(TOP, 'docs', 'authoring.md'), 'utf8');
const CHECK = path.join(PG_BIN, 'pg_tsworker');

/** A module: `good` with its settings, in a few variants. */
const GOOD = `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'good',
  settings: {
    naptime: { type: 'int', default: 10, min: 1, unit: 's', description: 'Seconds between passes.' },
    mode: { type: 'enum', values: ['fast', 'slow'], default: 'fast', description: 'How.' },
    ratio: { type: 'real', default: 0.5, min: 0, max: 1, description: 'A share.' },
    label: { type: 'string', default: 'x', description: 'A label.' },
  },
  async main(w) {
    while (await w.wait({ timeout: w.settings.naptime * 1000 })) {
      const mode: 'fast' | 'slow' = w.settings.mode;
      w.log.log(mode, w.settings.ratio, w.settings.label);
    }
  },
});
`;
const MISSPELT = GOOD.replace('w.settings.naptime * 1000', 'w.settings.naptme * 1000');

const MODULES: Record<string, string> = {
  'good.ts': GOOD,
  'misspelt.ts': MISSPELT,
  'syntax.ts': `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'broken',
  async main(w) {
    while (await w.wait( {
    }
  },
});
`,
  'typeerr.ts': `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'typed',
  async main(w) {
    const n: number = w.query('SELECT 1');
    w.log.log(n);
  },
});
`,
  'missing.ts': `import { defineWorker } from 'pg-tsworker';
import { pad } from 'left-padx';

export default defineWorker({
  name: 'missing',
  async main(w) {
    w.log.log(pad('x'));
  },
});
`,
  'nodefault.ts': `import { defineWorker } from 'pg-tsworker';

export const worker = defineWorker({ name: 'x', async main() {} });
export default { name: 'x', main() {} };
`,
  'badsetting.ts': `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'bad',
  settings: {
    naptime: { type: 'int', default: 0, min: 1, unit: 's' },
  },
  async main() {},
});
`,
  'floating.ts': `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'spin',
  async main(w) {
    while (!w.shutdownRequested) {
      w.wait({ timeout: 1000 });
    }
    void w.wait();
    w.wait().catch(() => undefined);
    let kept = w.wait();
    kept = w.wait();
    await kept;
  },
});
`,
  'resolves.ts': `import { defineWorker } from 'pg-tsworker';
import { Client } from 'pg';
import { greet } from 'localpkg';

export default defineWorker({
  name: 'resolves',
  async main(w) {
    w.log.log(greet(typeof Client));
  },
});
`,
  // .cts: CommonJS TypeScript, import/export syntax
  'goodc.cts': GOOD,
  // imports a file of its own that any OS user can write (made 0666 below)
  'usehelper.ts': `import { defineWorker } from 'pg-tsworker';
import { VERSION } from './helper';

export default defineWorker({ name: 'usehelper', async main(w) { w.log.log(VERSION); } });
`,
  'helper.ts': `export const VERSION = 2;\n`,
  // imports a package whose directory any OS user can write (made 0777 below)
  'usepkg.ts': `import { defineWorker } from 'pg-tsworker';
import { greet } from 'openpkg';

export default defineWorker({ name: 'usepkg', async main(w) { w.log.log(greet('x')); } });
`,
  'node_modules/openpkg/package.json': '{"name": "openpkg", "version": "1.0.0", "main": "index.js"}\n',
  'node_modules/openpkg/index.js': 'exports.greet = (s) => `hello ${s}`;\n',
  'node_modules/openpkg/index.d.ts': 'export declare function greet(s: string): string;\n',
  'node_modules/localpkg/package.json': '{"name": "localpkg", "version": "1.0.0", "main": "index.js"}\n',
  'node_modules/localpkg/index.js': 'exports.greet = (s) => `hello ${s}`;\n',
  'node_modules/localpkg/index.d.ts': 'export declare function greet(s: string): string;\n',
};

function writeModules(dir: string, modules: Record<string, string>): void {
  for (const [name, text] of Object.entries(modules)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir, name), text, { mode: 0o644 });
  }
}

/** Files the server must refuse to load: other OS users can write them (or it cannot read them). */
function openUp(dir: string): void {
  fs.chmodSync(path.join(dir, 'helper.ts'), 0o666);
  fs.chmodSync(path.join(dir, 'node_modules', 'openpkg'), 0o777);
}

/** The pattern of docs/workers.md "Notifications" and its shutdown example, as a module. */
function docListenModule(): string {
  const doc = fs.readFileSync(path.join(TOP, 'docs', 'workers.md'), 'utf8');
  const block = (marker: string) => {
    const at = doc.indexOf(marker);
    assert.ok(at >= 0, `docs/workers.md has "${marker}"`);
    const m = /```ts\n([\s\S]*?)```/.exec(doc.slice(at));
    assert.ok(m, `a ts block after "${marker}"`);
    return m[1];
  };
  return `import { defineWorker } from 'pg-tsworker';
import { Client } from 'pg';

export default defineWorker({
  name: 'doclisten',
  async main(w) {
    ${block('The pattern, which loses no job')}
    {
      ${block('which must close\nthe worker\'s own connections')}
    }
    // a handler may return what w.query() returns
    await w.listen('other', (n) => w.query('SELECT $1::text', [n.payload]));
  },
});
`;
}

interface Run {
  status: number | null;
  out: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Run {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 180_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const check = (dir: string, ...args: string[]): Run => run(CHECK, ['check', ...args], dir);

/** Run as root, the check loads modules as the `postgres` OS user (src/check/load.ts). */
const loaderRunsAsPostgres = (): boolean => process.geteuid?.() === 0 && /^postgres:/m.test(fs.readFileSync('/etc/passwd', 'utf8'));

/** The body of the first fenced block of `lang` after `marker` in docs/authoring.md. */
function docBlock(marker: string, lang: string): string {
  const at = DOC.indexOf(marker);
  assert.ok(at >= 0, `docs/authoring.md has "${marker}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(DOC.slice(at));
  assert.ok(m, `a ${lang} block after "${marker}"`);
  return m[1];
}

describe('types in the editor', () => {
  let project: string;

  before(() => {
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-project-'));
    assert.ok(!path.relative(TOP, project).match(/^[^.]/), 'the project is outside the checkout');
  });

  after(() => {
    if (project) fs.rmSync(project, { recursive: true, force: true });
  });

  test('the documented command installs pg-tsworker and Node 18 types; tsc passes a good worker and finds a misspelt setting', () => {
    fs.writeFileSync(path.join(project, 'package.json'), '{"name": "my-workers", "version": "1.0.0", "private": true}\n');
    fs.writeFileSync(path.join(project, 'tsconfig.json'), docBlock('A `tsconfig.json` for worker modules', 'json'));
    const install = docBlock('Install it into\nyour own project with one command', 'sh').trim();
    assert.match(install, /^npm install --save-dev "\$\(pg_config --sharedir\)\/pg_tsworker\/pg-tsworker\.tgz"$/);
    // pg_config of the server in use, as the documentation says
    const env = { ...process.env, PATH: `${path.dirname(PG_CONFIG)}:${process.env.PATH}` };
    const installed = run('bash', ['-c', install], project, env);
    assert.equal(installed.status, 0, installed.out);

    const pkg = JSON.parse(fs.readFileSync(path.join(project, 'node_modules', 'pg-tsworker', 'package.json'), 'utf8'));
    assert.equal(pkg.name, 'pg-tsworker');
    const control = /^default_version = '(\d+)\.(\d+)'$/m.exec(fs.readFileSync(path.join(TOP, 'pg_tsworker.control'), 'utf8'));
    assert.ok(control);
    assert.equal(pkg.version, `${control[1]}.${control[2]}.0`, "the package's version is the extension's");
    const nodeTypes = JSON.parse(fs.readFileSync(path.join(project, 'node_modules', '@types', 'node', 'package.json'), 'utf8'));
    assert.match(nodeTypes.version, /^18\./, 'Node 18 types, as the server runs libnode 18');

    // TypeScript as the page says to install it: what npm gives a user today
    // (7.x when this was written; 6.x and 7.x refused the node10 resolution
    // the shipped tsconfig once had). Without a registry (no network), the
    // project falls back to the checkout's TypeScript, and says so.
    const tsInstall = docBlock('And TypeScript itself', 'sh').trim();
    assert.match(tsInstall, /^npm install --save-dev typescript$/);
    const tsInstalled = run('bash', ['-c', tsInstall], project, env);
    const tscs: string[] = [path.join(TOP, 'node_modules', '.bin', 'tsc')]; // 5.9, what pg_tsworker check runs
    if (tsInstalled.status === 0) {
      const version = JSON.parse(fs.readFileSync(path.join(project, 'node_modules', 'typescript', 'package.json'), 'utf8')).version;
      console.log(`# typescript from the registry in the project: ${version}`);
      tscs.push(path.join(project, 'node_modules', '.bin', 'tsc'));
    } else {
      assert.match(tsInstalled.out, /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|network/i, tsInstalled.out);
      console.log('# no npm registry reachable: only the checkout\'s TypeScript was tried');
    }

    for (const tsc of tscs) {
      fs.writeFileSync(path.join(project, 'worker.ts'), GOOD);
      const good = run(tsc, ['--noEmit', '-p', project], project);
      assert.equal(good.status, 0, `${tsc}: ${good.out}`);

      fs.writeFileSync(path.join(project, 'worker.ts'), MISSPELT);
      const bad = run(tsc, ['--noEmit', '-p', project], project);
      assert.notEqual(bad.status, 0);
      const errors = bad.out.split('\n').filter((l) => /error TS\d+/.test(l));
      assert.equal(errors.length, 1, `${tsc}: ${bad.out}`);
      assert.match(errors[0], /^worker\.ts\(12,47\): error TS2551: Property 'naptme' does not exist on type .*/);
      assert.match(bad.out, /Did you mean 'naptime'\?/);
    }
  });
});

test('docs/authoring.md lists the packages shipped with the runtime, with their ranges and locked versions', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(TOP, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const lock = JSON.parse(fs.readFileSync(path.join(TOP, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
  const documented = [...DOC.matchAll(/^\| `([@a-z0-9/.-]+)` \| `([^`]+)` \| ([0-9.]+) \|$/gm)].map((m) => [m[1], m[2], m[3]]);
  const actual = Object.entries(pkg.dependencies).map(([name, range]) => [name, range, lock.packages[`node_modules/${name}`].version]);
  assert.deepEqual(documented, actual);
});

describe('pg_tsworker check', () => {
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsw-check-'));
    fs.chmodSync(dir, 0o755); // run as root, the check loads modules as the server's OS user
    writeModules(dir, { ...MODULES, 'doclisten.ts': docListenModule(), 'worldw.ts': GOOD, 'unreadable.ts': GOOD });
    openUp(dir);
    fs.chmodSync(path.join(dir, 'worldw.ts'), 0o666);
    fs.chmodSync(path.join(dir, 'unreadable.ts'), 0o600);
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a correct module: exit 0, the parameters it declares', () => {
    const r = check(dir, 'good.ts');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Node 18\.\d+\.\d+, TypeScript 5\./);
    assert.match(r.out, /^ {2}tsworker_good\.naptime {2}integer, default 10, unit s, min 1, sighup {2}-- Seconds between passes\.$/m);
    assert.match(r.out, /^ {2}tsworker_good\.mode {2}enum, default fast, values fast\|slow, sighup/m);
    assert.match(r.out, /^good\.ts: ok$/m);
  });

  // The broken modules in one run (one type-check program, the Node 18 types
  // parsed once); each must be reported, each at its place.
  let broken: Run;
  const BROKEN = ['misspelt', 'floating', 'syntax', 'typeerr', 'missing', 'nodefault', 'badsetting', 'usehelper', 'usepkg'];
  const of = (name: string) => broken.out.split('\n').filter((l) => l.startsWith(`${name}.ts:`)).join('\n');

  test('modules with problems: exit 1, each with its count', () => {
    broken = check(dir, ...BROKEN.map((m) => `${m}.ts`));
    assert.equal(broken.status, 1, broken.out);
    for (const m of BROKEN) assert.match(broken.out, new RegExp(`^${m}\\.ts: \\d+ problems?$`, 'm'), m);
  });

  test('a misspelt setting: file:line:col', () => {
    assert.match(of('misspelt'), /^misspelt\.ts:12:47: error TS2551: Property 'naptme' does not exist .*Did you mean 'naptime'\?$/m);
    assert.match(of('misspelt'), /^misspelt\.ts: 1 problem$/m);
  });

  test('a non-awaited w.wait() is reported; void, .catch() and an assignment are not', () => {
    const found = of('floating').split('\n').filter((l) => /promise not awaited/.test(l));
    assert.deepEqual(found.map((l) => l.split(': error')[0]), ['floating.ts:7:7'], broken.out);
    assert.match(found[0], /`w\.wait\(\{ timeout: 1000 \}\)`/);
  });

  test('a syntax error: reported at its place, the module not loaded', () => {
    assert.match(of('syntax'), /^syntax\.ts:8:3: error TS1005: ',' expected\.$/m);
    assert.match(of('syntax'), /^syntax\.ts: not loaded/m);
    assert.doesNotMatch(of('syntax'), /error \(load\)/);
  });

  test('a type error', () => {
    assert.match(of('typeerr'), /^typeerr\.ts:6:11: error TS2322: Type 'Rows<Row>' is not assignable to type 'number'\.$/m);
  });

  test('a missing import: by the type check and by loading, at the import', () => {
    assert.match(of('missing'), /^missing\.ts:2:21: error TS2307: Cannot find module 'left-padx'/m);
    assert.match(of('missing'), /^missing\.ts:2:21: error \(load\): Error: Cannot find module 'left-padx'$/m);
  });

  test('a default export not made by defineWorker: at the export', () => {
    assert.match(of('nodefault'), /^nodefault\.ts:4:1: error \(load\): TypeError: module .*nodefault\.ts must have a default export made by defineWorker\(\)/m);
  });

  test('a bad setting declaration (default outside its bounds): at defineWorker', () => {
    assert.match(of('badsetting'), /^badsetting\.ts:3:16: error \(load\): TypeError: setting "naptime": default 0 is outside min 1 \.\. max -$/m);
  });

  test('the server\'s rule on who may write a module, for the module and for what it imports', () => {
    assert.match(of('usehelper'), /error \(load\): .*refusing to load module ".*\/helper\.ts" is writable by other OS users \(mode 0666\)/);
    assert.match(of('usepkg'), /error \(load\): .*refusing to load the directory ".*\/node_modules\/openpkg" of module ".*index\.js" is writable by other OS users \(mode 0777\)/);
    const r = check(dir, 'worldw.ts', 'unreadable.ts');
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /^worldw\.ts:.*error \(load\): .*module ".*\/worldw\.ts" is writable by other OS users \(mode 0666\)/m);
    if (loaderRunsAsPostgres()) assert.match(r.out, /^unreadable\.ts:.*error \(load\): .*(cannot be read|permission denied|EACCES)/im);
  });

  test('a .cts module, the w.listen() patterns of docs/workers.md', () => {
    const r = check(dir, 'goodc.cts', 'doclisten.ts');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /^goodc\.cts: ok$/m);
    assert.match(r.out, /^doclisten\.ts: ok$/m);
  });

  test('node_modules beside the module and the packages shipped with the runtime resolve', () => {
    const r = check(dir, 'resolves.ts');
    assert.equal(r.status, 0, r.out);
  });

  test('several modules, name= as in tsworker.workers; the status is 1 if one has a problem', () => {
    const r = check(dir, 'jobs=good.ts', 'typeerr.ts');
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /^ {2}tsworker_jobs\.naptime /m);
    assert.match(r.out, /^good\.ts: ok$/m);
    assert.match(r.out, /^typeerr\.ts: 1 problem$/m);
  });

  test('one worker name twice is a problem, as in tsworker.workers', () => {
    const r = check(dir, 'good.ts', 'good.ts');
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /error: the worker name "good" is given twice/);
  });

  test('usage errors exit 2; --help exits 0', () => {
    for (const args of [[], ['check'], ['check', 'nope.ts'], ['check', '--strict', 'good.ts'], ['check', 'package.json'], ['check', 'node_modules'], ['frobnicate']]) {
      const r = run(CHECK, args, dir);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.out}`);
      assert.match(r.out, /usage: pg_tsworker check/);
    }
    for (const args of [['--help'], ['check', '--help']]) {
      const r = run(CHECK, args, dir);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /Exit status: 0 no problem, 1 problems found, 2 usage error/);
    }
  });
});

/** A worker that notes each start with its code's version. */
const DEPLOYED = (version: number) => `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'deployed',
  async main(w) {
    w.query('INSERT INTO deployed(version, pid) VALUES ($1, pg_backend_pid())', [${version}]);
    while (await w.wait()) {}
  },
});
`;

/**
 * docs/authoring.md's pattern for long work: short statements with a turn
 * of the event loop between them (setting cut = true), against one long
 * run of statements (cut = false). A 1 ms interval timer counts the turns.
 */
const BATCHES = `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'batches',
  settings: { cut: { type: 'bool', default: true, description: 'Yield between statements.' } },
  async main(w) {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await w.wait({ timeout: 20 });
    const before = ticks;
    const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
    for (let i = 0; i < 20; i++) {
      w.query('SELECT pg_sleep(0.02)');
      if (w.settings.cut) await tick();
    }
    const during = ticks - before;
    clearInterval(timer);
    w.query('INSERT INTO batches(cut, ticks) VALUES ($1, $2)', [w.settings.cut, during]);
    while (await w.wait()) {}
  },
});
`;

describe('on a server', () => {
  let c: Cluster;
  let dir: string;

  before(async () => {
    c = await Cluster.create('authoring', { conf: { max_worker_processes: 16 } });
    dir = path.join(c.baseDir, 'modules');
    fs.mkdirSync(dir, { mode: 0o755 });
    writeModules(dir, { 'good.ts': GOOD, 'deployed.ts': DEPLOYED(1), 'batches.ts': BATCHES, 'goodc.cts': GOOD });
    writeModules(dir, Object.fromEntries(Object.entries(MODULES).filter(([f]) => /^(usehelper|helper|usepkg)\.ts$|openpkg/.test(f))));
    openUp(dir);
    await c.query(`CREATE TABLE deployed(version int, pid int, at timestamptz DEFAULT now());
                   CREATE TABLE batches(cut bool, ticks int)`);
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': `${dir}/good.ts, ${dir}/deployed.ts`,
      'tsworker.restart_interval': 1,
    });
    await c.restart();
    await c.query('CREATE EXTENSION pg_tsworker');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('the parameters pg_tsworker check prints are those pg_settings lists', async () => {
    const r = check(dir, 'good.ts');
    assert.equal(r.status, 0, r.out);
    const printed = [...r.out.matchAll(/^ {2}(tsworker_good\.[a-z_]+) {2}([a-z]+), default ([^,]*), (?:unit ([A-Za-z]+), )?(?:min ([^,]+), )?(?:max ([^,]+), )?(?:values [^,]+, )?([a-z]+)/gm)].map(
      (m) => [m[1], m[2], m[3].replace(/^'(.*)'$/, '$1'), m[4] ?? null, m[5] ?? null, m[6] ?? null, m[7]],
    );
    const rows = await c.query<{ name: string; vartype: string; boot_val: string; unit: string | null; min_val: string | null; max_val: string | null; context: string }>(
      `SELECT name, vartype, boot_val, unit, min_val, max_val, context FROM pg_settings WHERE name LIKE 'tsworker_good.%' ORDER BY name`,
    );
    const declared = (v: string | null, t: string) => (t === 'integer' || t === 'real') && v !== null && Math.abs(Number(v)) < 2e9 ? String(Number(v)) : null;
    assert.deepEqual(
      printed.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      rows.map((s) => [s.name, s.vartype, s.boot_val, s.unit, declared(s.min_val, s.vartype), s.vartype === 'real' ? declared(s.max_val, s.vartype) : null, s.context]),
    );
  });

  test('a .cts module runs; a module importing a file or package other OS users can write is refused', async () => {
    await c.query(`SELECT tsworker.launch('goodc', $1)`, [`${dir}/goodc.cts`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'goodc'`);
    await c.query(`SELECT tsworker.stop('goodc')`);
    await assert.rejects(c.query(`SELECT tsworker.launch('usehelper', $1)`, [`${dir}/usehelper.ts`]), /refusing to load module ".*\/helper\.ts" is writable by other OS users \(mode 0666\)/);
    await assert.rejects(c.query(`SELECT tsworker.launch('usepkg', $1)`, [`${dir}/usepkg.ts`]), /refusing to load the directory ".*\/node_modules\/openpkg" of module/);
  });

  test('deploying new code: stop, replace the file, start', async () => {
    await c.pollQueryUntil('SELECT count(*) = 1 FROM deployed WHERE version = 1');
    await c.query(`SELECT tsworker.stop('deployed')`);
    await c.pollQueryUntil(`SELECT pid IS NULL FROM tsworker.stat_workers WHERE name = 'deployed'`);
    writeModules(dir, { 'deployed.ts': DEPLOYED(2) });
    assert.equal(check(dir, 'deployed.ts').status, 0);
    const [{ started }] = await c.query(`SELECT tsworker.start('deployed') AS started`);
    assert.equal(started, 1);
    await c.pollQueryUntil('SELECT count(*) = 1 FROM deployed WHERE version = 2');
  });

  test('pg_terminate_backend stops a worker until tsworker.start()', async () => {
    const [{ pid }] = await c.query(`SELECT pid FROM tsworker.stat_workers WHERE name = 'deployed'`);
    assert.ok(pid);
    const runs = Number((await c.query('SELECT count(*) AS n FROM deployed'))[0].n);
    await c.query('SELECT pg_terminate_backend($1)', [pid]);
    await c.pollQueryUntil(`SELECT pid IS NULL AND state = 'stopped' FROM tsworker.stat_workers WHERE name = 'deployed'`);
    await new Promise((resolve) => setTimeout(resolve, 3000)); // three restart intervals
    const [row] = await c.query(`SELECT pid, state FROM tsworker.stat_workers WHERE name = 'deployed'`);
    assert.deepEqual(row, { pid: null, state: 'stopped' });
    assert.equal(Number((await c.query('SELECT count(*) AS n FROM deployed'))[0].n), runs, 'not restarted');
    await c.query(`SELECT tsworker.start('deployed')`);
    await c.pollQueryUntil(`SELECT count(*) = ${runs + 1} FROM deployed`);
  });

  test('long work cut into statements with a turn of the loop between them lets timers run', async () => {
    await c.query(`SELECT tsworker.launch('cut', $1)`, [`${dir}/batches.ts`]);
    await c.query(`SELECT tsworker.launch('uncut', $1, '{"cut": false}')`, [`${dir}/batches.ts`]);
    await c.pollQueryUntil('SELECT count(*) = 2 FROM batches');
    const rows = await c.query<{ cut: boolean; ticks: number }>('SELECT cut, ticks FROM batches ORDER BY cut');
    assert.equal(rows[0].ticks, 0, 'one long run of statements: no timer ran');
    assert.ok(rows[1].ticks >= 10, `cut: the timer ran between statements (${rows[1].ticks} times)`);
  });

  test('launched workers do not survive a server restart; configured ones start again', async () => {
    assert.equal((await c.query(`SELECT name FROM tsworker.stat_workers WHERE name IN ('cut', 'uncut') AND pid IS NOT NULL`)).length, 2);
    await c.restart();
    await waitFor(async () => (await c.query(`SELECT 1 FROM tsworker.stat_workers WHERE name = 'deployed' AND pid IS NOT NULL`)).length === 1);
    assert.deepEqual(await c.query(`SELECT name FROM tsworker.stat_workers WHERE name IN ('cut', 'uncut')`), []);
  });

  test('tsworker_admin survives DROP EXTENSION; DROP ROLE works once no database has the extension or its schema', async () => {
    const other = { database: 'other' };
    const role = `SELECT 1 FROM pg_roles WHERE rolname = 'tsworker_admin'`;
    await c.query('CREATE DATABASE other');
    await c.query('CREATE EXTENSION pg_tsworker', [], other);
    await c.query('DROP EXTENSION pg_tsworker');
    assert.equal((await c.query(role)).length, 1);
    assert.equal((await c.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'tsworker'`)).length, 1, 'the schema is left');
    await assert.rejects(c.query('DROP ROLE tsworker_admin'), (err: Error & { detail?: string }) => {
      assert.match(err.message, /role "tsworker_admin" cannot be dropped because some objects depend on it/);
      assert.match(err.detail ?? '', /privileges for schema tsworker/);
      return true;
    });
    await c.query('DROP SCHEMA tsworker');
    // a schema left behind is used again by CREATE EXTENSION
    await c.query('DROP EXTENSION pg_tsworker', [], other);
    await c.query('CREATE EXTENSION pg_tsworker', [], other);
    await c.query('DROP EXTENSION pg_tsworker', [], other);
    await c.query('DROP SCHEMA tsworker', [], other);
    await c.query('DROP ROLE tsworker_admin');
    await c.query('CREATE EXTENSION pg_tsworker');
    assert.equal((await c.query(role)).length, 1, 'created again');
  });
});
