/**
 * The last spec applied, kept in `<data_directory>/pg_tsworker/compute_spec.json`
 * (mode 0600, like the rest of the data directory): at the next start the
 * worker applies it again when `tsworker_compute.spec_path` is not set, and
 * the parameters it set are known, so that a later spec without them resets
 * them, and so are the databases whose schema permissions were set (not set
 * again at every start). Written atomically (a temporary file renamed over the old one).
 */
import * as fs from 'fs';
import * as path from 'path';

import type { ComputeSpec } from './spec-schema';

export interface SavedSpec {
  /** When it was applied (ISO 8601). */
  appliedAt: string;
  /** Parameters the spec set, lower-case. */
  settings: string[];
  /** Databases whose schema `public` and default privileges were set: name → `<owner>@<oid>`. */
  schemaPerms?: Record<string, string>;
  spec: ComputeSpec;
}

export class SpecStore {
  readonly file: string;

  constructor(dataDirectory: string) {
    this.file = path.join(dataDirectory, 'pg_tsworker', 'compute_spec.json');
  }

  /** The saved spec, or null when there is none. Throws if the file is unreadable or not JSON. */
  load(): SavedSpec | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const saved = JSON.parse(text) as SavedSpec;
    if (!saved || typeof saved !== 'object' || !Array.isArray(saved.settings) || typeof saved.spec !== 'object') {
      throw new Error(`${this.file} is not a saved spec`);
    }
    return saved;
  }

  /** The saved spec's JSON, kept to compare the next one with. */
  private savedText: string | null = null;

  /** Save `spec` as applied now, unless the same spec is saved already. */
  save(spec: ComputeSpec, settings: Iterable<string>, schemaPerms: Record<string, string>, previous: SavedSpec | null): SavedSpec {
    const next: SavedSpec = { appliedAt: new Date().toISOString(), settings: [...settings].sort(), schemaPerms, spec };
    const text = JSON.stringify([spec, schemaPerms]);
    if (previous) this.savedText ??= JSON.stringify([previous.spec, previous.schemaPerms ?? {}]);
    if (previous && this.savedText === text && previous.settings.join() === next.settings.join()) return previous;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp.${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(next), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
    this.savedText = text;
    return next;
  }
}
