/**
 * compute_ctl's authorization (compute_tools/src/http/middleware/authorize.rs):
 * `Authorization: Bearer <JWT>` verified against a JSON Web Key Set (EdDSA
 * or RS256 keys) with jose, then the claims (libs/compute_api/src/requests.rs
 * `ComputeClaims`): a token of scope `compute_ctl:admin` must have audience
 * `compute`; any other token must carry this compute's `compute_id`.
 *
 * Status codes and messages are compute_ctl's: 400 `invalid authorization
 * token` for a missing or malformed header, 401 for a token that does not
 * verify (bad signature, expired, unknown key or algorithm) or an admin
 * token without the audience, 403 for a token of another compute.
 */
import * as fs from 'fs';
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type KeyLike } from 'jose';

/** The audience an admin token must carry (compute_ctl's `COMPUTE_AUDIENCE`). */
export const COMPUTE_AUDIENCE = 'compute';
/** The admin scope (compute_ctl's `ComputeClaimsScope::Admin`). */
export const ADMIN_SCOPE = 'compute_ctl:admin';
/** Seconds of clock skew accepted on `exp` (jsonwebtoken's default leeway, which compute_ctl keeps). */
const LEEWAY_S = 60;

/** The outcome of checking a request's credentials. */
export type AuthResult =
  | { ok: true; claims: JWTPayload }
  | { ok: false; status: 400 | 401 | 403; error: string; detail?: string };

/** A JSON Web Key Set, read from a file. */
export interface Jwks {
  keys: Record<string, unknown>[];
}

/** Read and check a JWKS file. Throws with the reason. */
export function readJwks(file: string): Jwks {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  if (!doc || typeof doc !== 'object' || !Array.isArray((doc as Jwks).keys)) {
    throw new Error(`${file} is not a JSON Web Key Set (an object with "keys")`);
  }
  const jwks = doc as Jwks;
  if (jwks.keys.length === 0) throw new Error(`${file} holds no keys`);
  for (const k of jwks.keys) {
    if (!k || typeof k !== 'object') throw new Error(`${file}: every key must be an object`);
    if ('d' in k) throw new Error(`${file}: key ${JSON.stringify(k.kid ?? '')} is a private key; a JWKS holds public keys only`);
    if (k.kty !== 'OKP' && k.kty !== 'RSA') throw new Error(`${file}: key ${JSON.stringify(k.kid ?? '')} has kty ${JSON.stringify(k.kty)}; EdDSA (OKP) and RS256 (RSA) keys are supported`);
  }
  return jwks;
}

/** What checks a request's `Authorization` header. */
export interface RequestAuthorizer {
  check(header: string | undefined): Promise<AuthResult>;
}

/**
 * Refuses every request (401) with one reason in the log line: the key
 * set is configured but cannot be used (unreadable, malformed, cleared
 * while the API listens on a non-loopback address). Fail closed: a revoked
 * key set must not keep working.
 */
export class FailClosed implements RequestAuthorizer {
  constructor(readonly reason: string) {}

  async check(): Promise<AuthResult> {
    return { ok: false, status: 401, error: 'failed to verify authorization token', detail: `no usable key set: ${this.reason}` };
  }
}

/** Verifies requests of one compute against one key set. */
export class Authorizer implements RequestAuthorizer {
  private readonly getKey: JWTVerifyGetKey;

  constructor(
    jwks: Jwks,
    private readonly computeId: string,
  ) {
    this.getKey = createLocalJWKSet(jwks as unknown as Parameters<typeof createLocalJWKSet>[0]);
  }

  private async verify(token: string): Promise<JWTPayload> {
    const options = { algorithms: ['EdDSA', 'RS256'], clockTolerance: LEEWAY_S };
    try {
      return (await jwtVerify(token, this.getKey, options)).payload;
    } catch (err) {
      // Several keys fit a token without "kid": try each, as compute_ctl does.
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
      let last: unknown = err;
      for await (const key of err as unknown as AsyncIterable<KeyLike>) {
        try {
          return (await jwtVerify(token, key, options)).payload;
        } catch (e) {
          last = e;
        }
      }
      throw last;
    }
  }

  /** Check the `Authorization` header of a request. */
  async check(header: string | undefined): Promise<AuthResult> {
    const m = /^Bearer +([^\s]+)\s*$/i.exec(header ?? '');
    if (!m) return { ok: false, status: 400, error: 'invalid authorization token' };
    let claims: JWTPayload;
    try {
      claims = await this.verify(m[1]);
    } catch (err) {
      return { ok: false, status: 401, error: 'failed to verify authorization token', detail: (err as Error).message };
    }
    const scope = claims.scope;
    if (scope !== undefined && scope !== null && scope !== ADMIN_SCOPE) {
      return { ok: false, status: 401, error: 'failed to verify authorization token', detail: `invalid compute claims scope ${JSON.stringify(scope)}` };
    }
    if (scope === ADMIN_SCOPE) {
      if (claims.aud === undefined) return { ok: false, status: 401, error: 'missing audience in authorization token claims' };
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!aud.includes(COMPUTE_AUDIENCE)) return { ok: false, status: 401, error: 'invalid audience in authorization token claims' };
      return { ok: true, claims };
    }
    const claimed = claims.compute_id;
    if (claimed === undefined || claimed === null) return { ok: false, status: 403, error: 'missing compute_id in authorization token claims' };
    if (!this.computeId || claimed !== this.computeId) {
      return { ok: false, status: 403, error: 'invalid compute ID in authorization token claims' };
    }
    return { ok: true, claims };
  }
}
