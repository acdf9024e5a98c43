/**
 * The compile cache: TypeScript modules compiled once, kept under the data
 * directory (`$PGDATA/pg_tsworker/cache`), so that a worker's restart, a
 * second launch of the same module and the module-loading child of
 * tsworker.launch() do not load tsx and esbuild and compile again.
 *
 * One entry per module path (`<hash of the path>.js`, mode 0600, in a 0700
 * directory): a JSON header line (format, compiler identity, path,
 * lengths), then the module's source, then the compiled CommonJS code
 * (tsx's output, with its inline source map, so stack traces keep pointing
 * at the .ts lines). An entry is used only when the header matches and the
 * stored source is the file's current source, character for character: the
 * entry is keyed by content, and a change of tsx, esbuild or Node.js
 * recompiles. (The content is compared, not hashed: Node's crypto module
 * alone costs about 20 ms to load here, more than the rest of a cache hit.)
 * An unreadable or corrupt entry is a miss; it is overwritten.
 *
 * Entries are written to a temporary file and renamed into place. A cache
 * that cannot be written leaves the module compiled at every start, with one
 * WARNING per process. Beyond MAX_ENTRIES the oldest entries are removed.
 */
import * as fs from 'fs';
import * as path from 'path';

/** Where the cache lives, relative to the data directory (every server process runs there). */
export const CACHE_SUBDIR = path.join('pg_tsworker', 'cache');
/** Entries kept; beyond this the oldest (by mtime) are removed when one is written. */
export const MAX_ENTRIES = 1000;
const FORMAT = 1;

/** Where cache events are told: the worker's log (DEBUG1, WARNING); silent by default. */
export interface CacheLog {
  debug(message: string): void;
  warning(message: string): void;
}

interface Header {
  format: number;
  compiler: string;
  file: string;
  sourceLength: number;
  codeLength: number;
}

/** 64-bit FNV-1a of a short string (a path), as 16 hex digits: the entry's file name. */
function pathHash(s: string): string {
  let lo = 0x84222325;
  let hi = 0xcbf29ce4;
  for (let i = 0; i < s.length; i++) {
    lo = (lo ^ s.charCodeAt(i)) >>> 0;
    // multiply (hi, lo) by the FNV prime 2^40 + 0x1b3, modulo 2^64
    const l = lo * 0x1b3;
    const h = hi * 0x1b3 + ((lo << 8) >>> 0) + Math.floor(l / 0x100000000);
    lo = l >>> 0;
    hi = h >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function versionOf(packageJson: string): string {
  try {
    return String((JSON.parse(fs.readFileSync(packageJson, 'utf8')) as { version?: unknown }).version);
  } catch {
    return 'unknown';
  }
}

/**
 * What the compiled code depends on besides the source and its path: tsx,
 * esbuild and Node.js versions (tsx targets the running Node), and tsx's
 * tsconfig override.
 */
function compilerIdentity(runtimeDir: string): string {
  const modules = path.join(runtimeDir, 'node_modules');
  return [
    `tsx ${versionOf(path.join(modules, 'tsx', 'package.json'))}`,
    `esbuild ${versionOf(path.join(modules, 'esbuild', 'package.json'))}`,
    `node ${process.version}`,
    `TSX_TSCONFIG_PATH=${process.env.TSX_TSCONFIG_PATH ?? ''}`,
  ].join('; ');
}

/** The cache of one process. */
export class CompileCache {
  private readonly compiler: string;
  private warned = false;

  /**
   * @param dir the cache directory (absolute), or undefined when there is
   *   none (not in a data directory): every module is compiled.
   */
  constructor(
    readonly dir: string | undefined,
    runtimeDir: string,
    private readonly log: CacheLog,
  ) {
    this.compiler = compilerIdentity(runtimeDir);
  }

  /** The cache of a server process: under the data directory it runs in, if it runs in one. */
  static forServer(runtimeDir: string, log: CacheLog): CompileCache {
    const cwd = process.cwd();
    const inDataDir = fs.existsSync(path.join(cwd, 'PG_VERSION'));
    return new CompileCache(inDataDir ? path.join(cwd, CACHE_SUBDIR) : undefined, runtimeDir, log);
  }

  /** The entry file of module `file`. */
  entryPath(file: string): string | undefined {
    return this.dir === undefined ? undefined : path.join(this.dir, `${pathHash(file)}.js`);
  }

  /** The compiled code of `file` whose source is `source`, or undefined (a miss, told at DEBUG1). */
  read(file: string, source: string): string | undefined {
    const entry = this.entryPath(file);
    if (entry === undefined) return undefined;
    let text: string;
    try {
      text = fs.readFileSync(entry, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.log.debug(`module ${file}: not in the compile cache${code === 'ENOENT' ? '' : ` (${entry} unreadable: ${code})`}`);
      return undefined;
    }
    const found = this.parse(text, file, source);
    if (typeof found !== 'object') {
      this.log.debug(`module ${file}: compile cache entry ${entry} not used (${found})`);
      return undefined;
    }
    this.log.debug(`module ${file}: compiled code from the compile cache (${entry})`);
    return found.code;
  }

  /** The code in entry `text` when it holds `file` compiled from `source`; else why not. */
  private parse(text: string, file: string, source: string): { code: string } | string {
    const nl = text.indexOf('\n');
    let h: Partial<Header>;
    try {
      h = JSON.parse(text.slice(0, nl < 0 ? text.length : nl)) as Partial<Header>;
    } catch {
      return 'corrupt header';
    }
    if (h.format !== FORMAT || h.compiler !== this.compiler) return 'another compiler';
    if (h.file !== file) return 'another module with the same hash';
    if (typeof h.sourceLength !== 'number' || typeof h.codeLength !== 'number' || text.length !== nl + 1 + h.sourceLength + h.codeLength) {
      return 'corrupt: wrong length';
    }
    if (text.slice(nl + 1, nl + 1 + h.sourceLength) !== source) return 'the source changed';
    return { code: text.slice(nl + 1 + h.sourceLength) };
  }

  /** Store `code`, compiled from `source` of `file`. Failures are one WARNING per process. */
  write(file: string, source: string, code: string): void {
    const entry = this.entryPath(file);
    if (entry === undefined || this.dir === undefined) return;
    const header: Header = { format: FORMAT, compiler: this.compiler, file, sourceLength: source.length, codeLength: code.length };
    const tmp = `${entry}.tmp-${process.pid}`;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, `${JSON.stringify(header)}\n${source}${code}`, { mode: 0o600 });
      fs.renameSync(tmp, entry);
      this.log.debug(`module ${file}: compiled TypeScript, stored in the compile cache (${entry})`);
    } catch (err) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // never created
      }
      if (!this.warned) {
        this.warned = true;
        this.log.warning(
          `could not write the compile cache ${this.dir}: ${(err as Error).message}; ` +
            'TypeScript modules are compiled at every start until it can be written',
        );
      }
      return;
    }
    this.prune();
  }

  /** Keep at most MAX_ENTRIES entries: remove the oldest. */
  private prune(): void {
    if (this.dir === undefined) return;
    const dir = this.dir;
    try {
      const names = fs.readdirSync(dir).filter((n) => n.endsWith('.js'));
      if (names.length <= MAX_ENTRIES) return;
      const aged = names
        .map((n) => {
          try {
            return { n, t: fs.statSync(path.join(dir, n)).mtimeMs };
          } catch {
            return { n, t: 0 };
          }
        })
        .sort((a, b) => a.t - b.t);
      for (const { n } of aged.slice(0, names.length - MAX_ENTRIES)) fs.rmSync(path.join(dir, n), { force: true });
    } catch (err) {
      this.log.debug(`could not prune the compile cache ${dir}: ${(err as Error).message}`);
    }
  }
}
