/**
 * How a failure is told: in full for the server log (`describe`), and in
 * one line with its position for `tsworker.stat_workers.last_error`
 * (`summarize`).
 */
import * as path from 'path';

import { PgError } from './errors';

/** String(v), even for a value whose toString throws. */
function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    try {
      return Object.prototype.toString.call(v);
    } catch {
      return 'a value that cannot be shown';
    }
  }
}

/** Everything known about `err`: its stack, and a PgError's SQLSTATE, detail, hint and context. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    let text: string;
    try {
      text = err.stack ?? `${safeString(err.name)}: ${safeString(err.message)}`;
    } catch {
      text = safeString(err);
    }
    if (err instanceof PgError) {
      if (err.code) text += `\nSQLSTATE: ${err.code}`;
      if (err.detail) text += `\nDETAIL: ${err.detail}`;
      if (err.hint) text += `\nHINT: ${err.hint}`;
      if (err.where) text += `\nCONTEXT: ${err.where}`;
    }
    return text;
  }
  return `non-error value thrown: ${safeString(err)}`;
}

/** esbuild's (tsx's) "Transform failed with N error(s):\n<file>:<line>:<column>: ERROR: <text>". */
const TRANSFORM = /^Transform failed with \d+ errors?:\n(.+?):(\d+):(\d+): (?:ERROR: )?(.*)$/m;
/** V8's syntax errors put "<file>:<line>" and the source line before the message. */
const SYNTAX_STACK = /^(.+):(\d+)\n/;
/** A stack frame: "    at fn (file:line:col)" or "    at file:line:col". */
const FRAME = /^\s+at (?:.*? \()?(.+?):(\d+):(\d+)\)?$/;

/** The first line of `s` that is not blank (a message may start with a newline). */
function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '') ?? '';
}


/**
 * The first frame of `stack` in the worker's own code: not inside Node.js
 * and not inside this runtime or the packages it ships.
 */
function userFrame(stack: string | undefined, runtimeDir: string): string | undefined {
  if (!stack) return undefined;
  for (const line of stack.split('\n').slice(1)) {
    const m = FRAME.exec(line);
    if (!m) continue;
    const file = m[1];
    if (file.startsWith('node:') || !path.isAbsolute(file)) continue;
    if (runtimeDir && (file === runtimeDir || file.startsWith(runtimeDir + path.sep))) continue;
    return `${file}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

/**
 * One line saying what went wrong and where: `file:line:column: message`
 * for a TypeScript or JavaScript syntax error (columns 1-based), else the
 * error's name and first line, a PgError's SQLSTATE, and the first frame
 * of the worker's own code.
 */
export function summarize(err: unknown, runtimeDir = ''): string {
  if (!(err instanceof Error)) return `non-error value thrown: ${firstLine(safeString(err))}`;
  const transform = TRANSFORM.exec(err.message);
  if (transform) {
    const [, file, line, column, text] = transform;
    return `${file}:${line}:${Number(column) + 1}: ${text}`;
  }
  if (err instanceof SyntaxError && err.stack) {
    const at = SYNTAX_STACK.exec(err.stack);
    if (at && !at[1].startsWith('SyntaxError')) return `${at[1]}:${at[2]}: SyntaxError: ${firstLine(err.message)}`;
  }
  let text = `${safeString(err.name)}: ${firstLine(safeString(err.message))}`;
  if (err instanceof PgError && err.code) text += ` (SQLSTATE ${err.code})`;
  const where = userFrame(err.stack, runtimeDir);
  return where ? `${text} (at ${where})` : text;
}
