/**
 * Helpers shared by the benchmark runners (bench/spi, bench/aggregate,
 * bench/failover): running a command, medians, and the printed tables.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Refuse a runner's command line: prints `error: <message>`, a blank line and
 * the usage on stderr, and exits with status 2 (no stack trace: bad input is
 * the user's mistake, not the runner's).
 */
export function usageError(message: string, usage: string): never {
  process.stderr.write(`error: ${message}\n\n${usage}`);
  process.exit(2);
}

/** Run a program; resolves with its stdout, rejects with its output on failure. */
export function sh(file: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${[file, ...args].join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
          return;
        }
        resolve(stdout);
      },
    );
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function fmtSeconds(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s >= 100) return `${s.toFixed(0)} s`;
  if (s >= 10) return `${s.toFixed(1)} s`;
  if (s >= 1) return `${s.toFixed(2)} s`;
  return `${(s * 1000).toFixed(s >= 0.1 ? 0 : s >= 0.01 ? 1 : 2)} ms`;
}

export function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '-';
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : `${r.toFixed(2)}x`;
}

/** A text table: ` | ` between columns, `-+-` under the header. */
export function table(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line)].join('\n');
}

/** Fraction of all CPUs' time spent non-idle during `ms` (Linux /proc/stat; 0 elsewhere). */
export async function cpuBusy(ms: number): Promise<number> {
  const sample = (): [number, number] | undefined => {
    try {
      const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
      const idle = f[3] + (f[4] ?? 0); // idle + iowait
      return [idle, f.reduce((a, b) => a + b, 0)];
    } catch {
      return undefined;
    }
  };
  const a = sample();
  await sleep(ms);
  const b = sample();
  if (!a || !b || b[1] === a[1]) return 0;
  return 1 - (b[0] - a[0]) / (b[1] - a[1]);
}
