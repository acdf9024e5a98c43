/**
 * Helpers for the compute worker's test and benchmark: an HTTP client for
 * its API (plain or TLS), keys and tokens made with jose, a self-signed
 * certificate made with openssl, and the specs of the 1,000-role test.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from 'jose';

/** An answer of the API. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
  /** Round trip, ms. */
  ms: number;
}

export interface RequestOptions {
  body?: unknown;
  /** Bearer token; `null` sends no Authorization header. Default: the client's token. */
  token?: string | null;
  headers?: Record<string, string>;
}

/** A client of one compute API. */
export class ApiClient {
  constructor(
    readonly base: string,
    public token: string | null = null,
    private readonly ca?: Buffer,
  ) {}

  request(method: string, pathname: string, opts: RequestOptions = {}): Promise<Answer> {
    const url = new URL(pathname, this.base);
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const token = opts.token === undefined ? this.token : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method, headers, ca: this.ca, agent: false, timeout: 120_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, ms: performance.now() - t0 });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${pathname}: timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  get(pathname: string, opts?: RequestOptions): Promise<Answer> {
    return this.request('GET', pathname, opts);
  }

  post(pathname: string, opts?: RequestOptions): Promise<Answer> {
    return this.request('POST', pathname, opts);
  }
}

/** A signing key and the public JWK the compute verifies it with. */
export interface TestKey {
  kid: string;
  alg: 'EdDSA' | 'RS256';
  privateKey: KeyLike;
  jwk: Record<string, unknown>;
}

export async function makeKey(alg: 'EdDSA' | 'RS256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

/** Write a JWKS file readable by the server's OS user. */
export function writeJwks(file: string, keys: TestKey[]): void {
  fs.writeFileSync(file, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
  fs.chmodSync(file, 0o644);
}

/** A signed token with `claims`; `expiresIn` in seconds (negative: expired). */
export async function makeToken(key: TestKey, claims: Record<string, unknown>, opts: { expiresIn?: number; kid?: boolean } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader(opts.kid === false ? { alg: key.alg } : { alg: key.alg, kid: key.kid })
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expiresIn ?? 600))
    .sign(key.privateKey);
}

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl, in `dir` (files readable by the server). */
export function makeCertificate(dir: string): { key: string; cert: string; ca: Buffer } {
  const key = path.join(dir, 'api.key');
  const cert = path.join(dir, 'api.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert,
  ], { stdio: 'pipe' });
  fs.chmodSync(key, 0o644);
  fs.chmodSync(cert, 0o644);
  return { key, cert, ca: fs.readFileSync(cert) };
}

/** PostgreSQL's MD5 password hash, without its `md5` prefix (what compute_ctl's specs carry). */
export function md5Password(password: string, role: string): string {
  return createHash('md5').update(password + role).digest('hex');
}

export const roleName = (i: number) => `r${String(i).padStart(4, '0')}`;
export const dbName = (i: number) => `db${String(i).padStart(3, '0')}`;

/** The spec of the big test: `roles` roles (r0000 ...), `databases` databases (db000 ... owned by r0000, r0010 ...) and a few settings. */
export function bigSpec(roles = 1000, databases = 100): any {
  return {
    format_version: 1.0,
    operation_uuid: 'first-apply',
    suspend_timeout_seconds: 300,
    cluster: {
      cluster_id: 'test-cluster',
      name: 'test',
      roles: Array.from({ length: roles }, (_, i) => ({
        name: roleName(i),
        encrypted_password: md5Password(`pw${i}`, roleName(i)),
        options: i % 100 === 0 ? [{ name: 'CONNECTION LIMIT', value: '50', vartype: 'integer' }] : null,
      })),
      databases: Array.from({ length: databases }, (_, i) => ({
        name: dbName(i),
        owner: roleName((i * 10) % roles),
        options: i % 10 === 0 ? [{ name: 'TEMPLATE', value: 'template0', vartype: 'enum' }] : null,
      })),
      settings: [
        { name: 'log_min_duration_statement', value: '10s', vartype: 'string' },
        { name: 'statement_timeout', value: '0', vartype: 'integer' },
        { name: 'idle_in_transaction_session_timeout', value: '1h', vartype: 'string' },
      ],
    },
    delta_operations: [],
  };
}

/**
 * The big spec, changed: r0001 renamed, r0002's password changed, db001
 * given to r0003, db098 renamed, db099 and roles r0998/r0999 deleted, one
 * setting changed and one dropped.
 */
export function changedSpec(roles = 1000, databases = 100): any {
  const spec = bigSpec(roles, databases);
  spec.operation_uuid = 'change';
  const r = spec.cluster.roles as { name: string; encrypted_password: string }[];
  r[1].name = `${roleName(1)}_renamed`;
  r[1].encrypted_password = md5Password('pw1', r[1].name);
  r[2].encrypted_password = md5Password('new password', roleName(2));
  spec.cluster.roles = r.filter((x) => x.name !== roleName(roles - 1) && x.name !== roleName(roles - 2));
  const d = spec.cluster.databases as { name: string; owner: string }[];
  d[1].owner = roleName(3);
  d[databases - 2].name = `${dbName(databases - 2)}_renamed`;
  spec.cluster.databases = d.filter((x) => x.name !== dbName(databases - 1));
  spec.cluster.settings = [
    { name: 'log_min_duration_statement', value: '5s', vartype: 'string' },
    { name: 'statement_timeout', value: '0', vartype: 'integer' },
  ];
  spec.delta_operations = [
    { action: 'rename_role', name: roleName(1), new_name: `${roleName(1)}_renamed` },
    { action: 'delete_role', name: roleName(roles - 1) },
    { action: 'delete_role', name: roleName(roles - 2) },
    { action: 'rename_db', name: dbName(databases - 2), new_name: `${dbName(databases - 2)}_renamed` },
    { action: 'delete_db', name: dbName(databases - 1) },
  ];
  return spec;
}
