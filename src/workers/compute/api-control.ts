/**
 * The API's configuration, applied at start and on every reload: the key
 * set and compute id (authorization), the TLS key and certificate, and
 * whether the API may listen at all.
 *
 * - A key set that is configured but cannot be used (missing file, not a
 *   JWKS, a private key in it, an unsupported `kty`) fails closed: every
 *   route that needs authorization answers 401 with the reason in the log
 *   line, until a reload brings a usable one. A key set cleared by a reload
 *   fails closed too while the API listens on a non-loopback address.
 * - TLS switched on or off by a reload restarts the listener (same
 *   address and port) over HTTPS or plain HTTP; new files for a running
 *   HTTPS listener replace its key and certificate. Files that cannot be
 *   read are named in a WARNING: the API is not served over plain HTTP
 *   when TLS is asked for (at start it is then not served at all, without
 *   failing the worker), and an HTTPS listener keeps its previous files.
 *
 * String settings are read from the server on each reload (`w.setting`),
 * so that a setting cleared to '' is seen as cleared.
 */
import * as fs from 'fs';
import { isIP } from 'net';

import type { WorkerContext } from '../../runtime/index';
import { Authorizer, FailClosed, readJwks, type RequestAuthorizer } from './auth';
import type { ApiServer } from './http';

/** `host:port` or `[v6]:port` to its parts. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`tsworker_compute.listen must be host:port or [ipv6]:port, not ${JSON.stringify(listen)}`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** A string setting of the worker as the server has it now ('' when empty). */
export function computeSetting(w: WorkerContext, name: string): string {
  return w.setting(`tsworker_compute.${name}`) ?? '';
}

/** Read a file named by a setting; the error names the setting and the file. */
function readNamed(setting: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`could not read ${setting} ${JSON.stringify(file)}: ${(err as Error).message}`);
  }
}

export class ApiControl {
  /** The authorizer; null when no key set is configured (loopback only). */
  authorizer: RequestAuthorizer | null = null;
  /** `address:port` the API listens on, or null. */
  listening: string | null = null;
  private bound: { host: string; port: number } | null = null;
  private computeId = '';

  constructor(
    private readonly w: WorkerContext,
    private readonly api: ApiServer,
    /** Called when the listener starts, stops or changes. */
    private readonly changed: () => void,
  ) {}

  private setting(name: string): string {
    return computeSetting(this.w, name);
  }

  /** The authorizer the settings ask for; logs why when it fails closed. */
  private loadAuthorizer(host: string, reload: boolean): RequestAuthorizer | null {
    const jwks = this.setting('jwks');
    const computeId = this.setting('compute_id');
    if (reload && computeId !== this.computeId) this.w.log.log(`tsworker_compute.compute_id is now ${JSON.stringify(computeId)}`);
    this.computeId = computeId;
    if (!jwks) {
      if (reload && this.authorizer && this.listening && !isLoopback(host)) {
        const reason = `tsworker_compute.jwks was cleared while the API listens on ${this.listening}, not a loopback address`;
        this.w.log.warning(`${reason}: every request that needs authorization is refused (401) until a key set is configured`);
        return new FailClosed(reason);
      }
      if (reload && this.authorizer) this.w.log.log('tsworker_compute.jwks cleared: requests are no longer authorized (the API listens on a loopback address)');
      return null;
    }
    try {
      return new Authorizer(readJwks(jwks), computeId);
    } catch (err) {
      const reason = `tsworker_compute.jwks ${JSON.stringify(jwks)}: ${(err as Error).message}`;
      this.w.log.warning(`${reason}; every request that needs authorization is refused (401) until a reload brings a usable key set`);
      return new FailClosed(reason);
    }
  }

  /** The TLS files, or undefined when TLS is not configured. Throws naming the setting and file. */
  private tlsFiles(): { key: Buffer; cert: Buffer } | undefined {
    const keyPath = this.setting('key_path');
    const certPath = this.setting('cert_path');
    if (!keyPath && !certPath) return undefined;
    if (!keyPath || !certPath) throw new Error('TLS needs both tsworker_compute.key_path and tsworker_compute.cert_path');
    return { key: readNamed('tsworker_compute.key_path', keyPath), cert: readNamed('tsworker_compute.cert_path', certPath) };
  }

  private async listen(host: string, port: number, tls: { key: Buffer; cert: Buffer } | undefined): Promise<void> {
    const addr = await this.api.listen(host, port, tls);
    this.bound = { host, port: addr.port };
    this.listening = `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    this.w.log.log(`compute API listening on ${tls ? 'https' : 'http'}://${this.listening}` + (this.setting('jwks') ? '' : ' (no JWKS: requests are not authorized)'));
    this.changed();
  }

  /** Start the API as the settings say; does not listen (with a WARNING) when they forbid it. Throws when the address cannot be bound. */
  async start(reload = false): Promise<void> {
    let listen: { host: string; port: number };
    try {
      listen = parseListen(this.setting('listen'));
    } catch (err) {
      this.w.log.warning(`the compute API is not served: ${(err as Error).message}`);
      return;
    }
    this.authorizer = this.loadAuthorizer(listen.host, reload);
    if (!this.setting('jwks') && !isLoopback(listen.host)) {
      this.w.log.warning(
        `not serving the compute API on ${this.setting('listen')}: without tsworker_compute.jwks it listens on a loopback address only (set a JWKS, or listen on 127.0.0.1)`,
      );
      return;
    }
    let tls;
    try {
      tls = this.tlsFiles();
    } catch (err) {
      this.w.log.warning(`the compute API is not served: ${(err as Error).message} (fix the files and reload)`);
      return;
    }
    await this.listen(listen.host, listen.port, tls);
  }

  /** Apply the settings after a reload. */
  async reload(): Promise<void> {
    if (!this.bound) {
      await this.start(true);
      return;
    }
    const { host, port } = this.bound;
    this.authorizer = this.loadAuthorizer(host, true);
    let tls;
    try {
      tls = this.tlsFiles();
    } catch (err) {
      if (this.api.tls) {
        this.w.log.warning(`TLS files not reloaded: ${(err as Error).message}; HTTPS keeps the previous key and certificate`);
      } else {
        this.w.log.warning(`TLS asked for but ${(err as Error).message}: the compute API stops serving plain HTTP until a reload brings readable files`);
        await this.stop();
      }
      return;
    }
    if (tls && this.api.tls) {
      this.api.setTls(tls);
      return;
    }
    if (!!tls === this.api.tls) return;
    this.w.log.log(`TLS ${tls ? 'configured' : 'no longer configured'}: restarting the compute API on ${this.listening} over ${tls ? 'HTTPS' : 'plain HTTP'}`);
    await this.api.close(1000);
    this.listening = null;
    await this.listen(host, port, tls);
  }

  /** Stop serving (until a reload starts the API again). */
  private async stop(): Promise<void> {
    await this.api.close(1000);
    this.listening = null;
    this.bound = null;
    this.changed();
  }
}
