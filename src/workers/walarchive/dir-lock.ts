/**
 * One writer per archive directory: `<dir>/walarchive.lock` holds the pid
 * and name of the worker that writes there, made with O_EXCL (as
 * postmaster.pid). A lock whose process is gone is stale and taken over;
 * a live one makes a second worker refuse the directory, so that two
 * writers never race on the same segment files.
 */
import * as fs from 'fs';
import * as path from 'path';

export const LOCK_FILE = 'walarchive.lock';

/** The directory is in use by another live process. */
export class DirectoryInUse extends Error {
  constructor(
    readonly dir: string,
    readonly holder: string,
  ) {
    super(`the archive directory "${dir}" is in use by ${holder}`);
    this.name = 'DirectoryInUse';
  }
}

/** Whether `pid` runs and, where /proc tells, is still the worker `who` (not a reused pid). */
function alive(pid: number, who: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(who);
  } catch {
    return true;
  }
}

/** Take the lock of `dir` for this process as `owner`; throws DirectoryInUse. */
export function lockDirectory(dir: string, owner: string): void {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeSync(fd, `${process.pid}\n${owner}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // removed meanwhile: try again
    }
    const [pidText, who] = text.split('\n');
    const pid = Number(pidText);
    if (pid === process.pid) return; // ours (a new session of the same worker)
    if (Number.isInteger(pid) && pid > 0 && alive(pid, who || '')) throw new DirectoryInUse(dir, `worker "${who || '?'}" (pid ${pid})`);
    fs.rmSync(file, { force: true }); // stale: its process is gone
  }
  throw new DirectoryInUse(dir, 'another process (its lock file keeps coming back)');
}

/** Give up the lock of `dir` if this process holds it. */
export function unlockDirectory(dir: string): void {
  const file = path.join(dir, LOCK_FILE);
  try {
    if (Number(fs.readFileSync(file, 'utf8').split('\n')[0]) === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // gone already
  }
}
