/**
 * Who may have written a file the server loads as code: the rule, for
 * every file a worker or hook module brings in (the module itself, the
 * files it imports, the `node_modules` packages they resolve to), applied
 * by the loader (modules.ts) in the server and in `pg_tsworker check`.
 *
 * A file loaded as code must be a regular file owned by root or by the
 * server's OS user and writable by no one else, in a directory no one else
 * can write (unless sticky, like /tmp); for a file inside a `node_modules`
 * tree, every directory from the file up to that `node_modules` too (whoever
 * can write one of them can put another package in its place). Whoever can
 * change such a file runs code as the server's OS user.
 *
 * The shim checks the entry file with the same rule before it starts a
 * process (native/shim/module_file.c), so that tsworker.launch() can refuse
 * at once; this is the rule for everything the module loads.
 *
 * The runtime's own files (its directory: built-in workers, the shipped
 * packages) are installed with the server's binaries and trusted as they are.
 */
import * as fs from 'fs';
import * as path from 'path';

/** The problem with loading `file` as code, or undefined when there is none. */
export function moduleFileProblem(file: string, uid = process.geteuid?.() ?? 0, seenDirs?: Set<string>): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    return `module "${file}" does not exist or cannot be read by the server: ${(err as Error).message}`;
  }
  if (!st.isFile()) return `module "${file}" is not a regular file`;
  if (st.uid !== 0 && st.uid !== uid) return `module "${file}" is owned by another OS user (uid ${st.uid})`;
  if (st.mode & 0o022) return `module "${file}" is writable by other OS users (mode ${mode(st)})`;
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (err) {
    return `module "${file}" cannot be read by the server's OS user: ${(err as Error).message}`;
  }
  for (const dir of guardingDirectories(file)) {
    if (seenDirs?.has(dir)) continue;
    let ds: fs.Stats;
    try {
      ds = fs.statSync(dir);
    } catch {
      continue;
    }
    if (ds.mode & 0o022 && !(ds.mode & 0o1000)) {
      return `the directory "${dir}" of module "${file}" is writable by other OS users (mode ${mode(ds)})`;
    }
    seenDirs?.add(dir);
  }
  return undefined;
}

/** The file's directory; inside a node_modules tree, each directory up to that node_modules. */
function guardingDirectories(file: string): string[] {
  const dirs = [path.dirname(file)];
  const parts = path.dirname(file).split(path.sep);
  const top = parts.lastIndexOf('node_modules');
  if (top > 0) {
    for (let i = parts.length - 1; i > top; i--) dirs.push(parts.slice(0, i).join(path.sep));
  }
  return dirs;
}

function mode(st: fs.Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}
