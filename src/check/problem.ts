/**
 * A problem found by `pg_tsworker check`, and how it is printed:
 * `file:line:column: message`, the form editors and compilers use.
 */
import * as path from 'path';

export interface Problem {
  /** Absolute path of the file. */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  message: string;
}

/** `file:line:column: message`, the file relative to `cwd` when it is below it. */
export function formatProblem(p: Problem, cwd: string): string {
  const rel = path.relative(cwd, p.file);
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p.file;
  return `${shown}:${p.line}:${p.column}: ${p.message}`;
}
