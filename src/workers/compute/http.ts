/**
 * The HTTP server of the compute API, on Node's `http`/`https`, shaped like
 * compute_ctl's (compute_tools/src/http/server.rs): every response carries
 * `x-request-id` (the caller's, or a new UUID), errors are JSON
 * `{"error": "..."}` (compute_ctl's `GenericAPIError`), each request is one
 * log line with its status and latency, and each is a span whose parent is
 * the caller's `traceparent`. Routes needing authorization go through
 * the authorizer first; unknown paths answer 404, wrong methods 405.
 *
 * Limits, so that nobody can take the worker's file descriptors or hold it
 * busy without a token: at most {@link MAX_CONNECTIONS} connections (more
 * are closed at once), headers within {@link HEADERS_TIMEOUT_MS} (a connection
 * that sends nothing is closed after as long), a whole
 * request within {@link REQUEST_TIMEOUT_MS}, idle keep-alive connections
 * closed after {@link KEEP_ALIVE_MS}, TLS handshakes within
 * {@link HANDSHAKE_TIMEOUT_MS}, bodies of at most {@link MAX_BODY} bytes
 * (413, before any byte is read when `content-length` says so, and without
 * `100 Continue`).
 */
import { randomUUID } from 'crypto';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo, Socket } from 'net';

import type { JWTPayload } from 'jose';

import type { WorkerContext } from '../../runtime/index';
import type { RequestAuthorizer } from './auth';
import { extractContext, traceIdOf, Tracing, type Context, type Span } from './tracing';

/** Largest request body read (bytes). */
export const MAX_BODY = 16 * 1024 * 1024;
/** Most connections open at once; the worker's own sockets and files need the rest of its descriptors. */
export const MAX_CONNECTIONS = 128;
/** Time for a request's headers to arrive (ms). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Time for a whole request (headers and body) to arrive (ms); the answer may take longer. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** An idle keep-alive connection is closed after this (ms). */
export const KEEP_ALIVE_MS = 5_000;
/** Time for a TLS handshake (ms). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How often connections are checked against the timeouts (ms). */
const CHECK_INTERVAL_MS = 1_000;

/**
 * The caller's `x-request-id` when it is 1 to 128 printable ASCII
 * characters without spaces (it goes into log lines as is), else null.
 */
export function usableRequestId(header: string | string[] | undefined): string | null {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && /^[\x21-\x7e]{1,128}$/.test(v) ? v : null;
}

/** An error answered with its status and `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** More fields of the JSON body. */
    readonly extra: Record<string, unknown> = {},
    /** Said in the log line only. */
    readonly detail?: string,
    /** Close the connection after the answer (the body was not read). */
    readonly close = false,
  ) {
    super(message);
  }
}

/** A request as handlers see it. */
export interface Request {
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Context whose span is this request's: parent of the spans it makes. */
  readonly context: Context;
  /** Prefix for log lines about this request (`trace_id=… ` when traced, else empty). */
  readonly logPrefix: string;
  /** Claims of the verified token, if the route needs one and one was given. */
  claims?: JWTPayload;
  /** The body as JSON (415 without `content-type: application/json`, 400 if malformed, 413 if too large). */
  json(): Promise<unknown>;
}

/** What a handler answers. */
export interface Reply {
  status: number;
  /** Serialized as JSON. */
  body?: unknown;
  /** Sent as is (with `contentType`). */
  text?: string;
  contentType?: string;
  /** Called once the response has been handed to the operating system. */
  sent?: () => void;
  /** Close the connection after the answer. */
  close?: boolean;
}

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  /** Needs `Authorization: Bearer <JWT>` (every route but /metrics). */
  auth: boolean;
  handler(req: Request): Promise<Reply>;
}

export interface ServerOptions {
  w: WorkerContext;
  tracing: Tracing;
  routes: Route[];
  /** The authorizer, or null when no JWKS is configured (the API then listens on loopback only). */
  authorizer(): RequestAuthorizer | null;
  /** Called for every answered request. */
  observe?(route: string, status: number, ms: number): void;
}

/**
 * The body, at most {@link MAX_BODY} bytes. A larger one is refused with
 * 413 before any byte is read when `content-length` says so; without it,
 * the rest is read and dropped (the request timeout bounds how long), so
 * that the client reads the 413 instead of a reset connection.
 */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, `request body is larger than ${MAX_BODY} bytes`, {}, undefined, true);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
      else chunks.length = 0;
    });
    req.on('end', () => (size > MAX_BODY ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    // Closed before the body arrived: the client left, or REQUEST_TIMEOUT_MS passed (Node answered 408).
    req.on('close', () => {
      if (!req.complete) reject(new HttpError(408, `the request body did not arrive within ${REQUEST_TIMEOUT_MS / 1000} s, or the client closed the connection`));
    });
  });
}

/** A request being answered. */
interface InFlight {
  /** Answer with `reply` unless answered already. */
  finish(reply: Reply, detail?: string): void;
  done: boolean;
}

export class ApiServer {
  private server: http.Server | https.Server | null = null;
  private readonly inflight = new Set<InFlight>();
  /** Sockets whose request is being answered (an apply may keep them quiet for long). */
  private readonly busySockets = new Set<Socket>();
  private stopping = false;

  constructor(private readonly opts: ServerOptions) {}

  /** Whether the API serves over TLS now. */
  get tls(): boolean {
    return this.server instanceof https.Server;
  }

  /** Listen on `host:port`, over TLS when `tls` is given. Resolves with the bound address. */
  listen(host: string, port: number, tls?: { key: Buffer; cert: Buffer }): Promise<AddressInfo> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const options = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CHECK_INTERVAL_MS, keepAliveTimeout: KEEP_ALIVE_MS };
    const server = tls
      ? https.createServer({ ...options, key: tls.key, cert: tls.cert, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, handler)
      : http.createServer(options, handler);
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_MS;
    // A connection that sends nothing at all (Node's headers timeout starts with a request) is closed too; one whose request is being answered is not.
    server.setTimeout(HEADERS_TIMEOUT_MS, (socket: Socket) => {
      if (!this.busySockets.has(socket)) socket.destroy();
    });
    // Expect: 100-continue: no "100 Continue" for a body that would be refused.
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (Number(req.headers['content-length'] ?? 0) <= MAX_BODY) res.writeContinue();
      handler(req, res);
    });
    this.server = server;
    this.stopping = false;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.opts.w.log.warning(`HTTP server error: ${err.message}`));
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /** Replace the TLS key and certificate (after a reload). */
  setTls(tls: { key: Buffer; cert: Buffer }): void {
    if (this.server instanceof https.Server) this.server.setSecureContext({ key: tls.key, cert: tls.cert });
  }

  /**
   * Stop listening. Requests under way get up to `graceMs` to be answered;
   * those still unanswered then get 503 (logged like any answer), and every
   * connection is closed.
   */
  async close(graceMs = 0): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const until = Date.now() + graceMs;
    while ([...this.inflight].some((f) => !f.done) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const f of this.inflight) f.finish({ status: 503, body: { error: 'the compute API is shutting down' } }, 'answered before its handler finished');
    // Give the answers a moment to leave before the sockets are closed.
    if (this.inflight.size > 0) await new Promise((r) => setTimeout(r, 50));
    server.closeAllConnections();
    await closed;
  }

  /** The request's path and query; the path as sent (`//status` stays `//status`). */
  private static target(raw: string): URL {
    try {
      return raw.startsWith('/') ? new URL(`http://compute${raw}`) : new URL(raw, 'http://compute');
    } catch {
      return new URL('http://compute/');
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    const given = usableRequestId(req.headers['x-request-id']);
    const id = given ?? randomUUID();
    const idNote = given === null && req.headers['x-request-id'] !== undefined ? ' (the x-request-id given was not 1-128 printable characters: replaced)' : '';
    const url = ApiServer.target(req.url ?? '/');
    const method = req.method ?? 'GET';
    const parent = extractContext(req.headers);
    const traced = traceIdOf(parent) !== null || this.opts.tracing.endpoint !== null;
    const route = this.opts.routes.find((r) => r.path === url.pathname);
    const span: Span = this.opts.tracing.start(`${method} ${route?.path ?? url.pathname}`, parent, {
      'http.request.method': method,
      'url.path': url.pathname,
      'http.request.header.x-request-id': id,
    }, true);
    const context = Tracing.contextOf(span, parent);
    const logPrefix = traced ? `trace_id=${span.spanContext().traceId} ` : '';
    let jsonRead: Promise<unknown> | undefined;
    const request: Request = {
      id,
      method,
      path: url.pathname,
      query: url.searchParams,
      context,
      logPrefix,
      json: () =>
        (jsonRead ??= (async () => {
          const type = String(req.headers['content-type'] ?? '');
          if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'expected request with `content-type: application/json`');
          const raw = await readBody(req);
          try {
            return JSON.parse(raw.toString('utf8')) as unknown;
          } catch (err) {
            throw new HttpError(400, `failed to parse the request body as JSON: ${(err as Error).message}`);
          }
        })()),
    };
    const entry: InFlight = {
      done: false,
      finish: (reply: Reply, detail = '') => {
        if (entry.done) return;
        entry.done = true;
        this.inflight.delete(entry);
        const body = reply.text ?? JSON.stringify(reply.body ?? null);
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(reply.status, {
            'content-type': reply.contentType ?? 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-request-id': id,
            ...(reply.status === 405 && route ? { allow: route.method } : {}),
            ...(reply.close || this.stopping ? { connection: 'close' } : {}),
          });
          res.end(body, () => reply.sent?.());
        }
        const ms = performance.now() - t0;
        span.setAttribute('http.response.status_code', reply.status);
        Tracing.end(span, reply.status >= 500 ? new Error(String((reply.body as { error?: string })?.error ?? reply.status)) : undefined);
        this.opts.observe?.(route?.path ?? 'unknown', reply.status, ms);
        const error = reply.status >= 400 && reply.body && typeof reply.body === 'object' ? ` error=${JSON.stringify((reply.body as { error?: unknown }).error)}` : '';
        const shown = `${url.pathname}${url.search}`;
        this.opts.w.log.log(
          `${logPrefix}request_id=${id} ${method} ${JSON.stringify(shown).slice(1, -1).slice(0, 300)} ${reply.status} ${ms.toFixed(1)} ms${error}${detail}${idNote}`,
        );
      },
    };
    this.inflight.add(entry);
    const socket = req.socket;
    this.busySockets.add(socket);
    res.once('close', () => this.busySockets.delete(socket));
    let reply: Reply;
    let detail = '';
    try {
      reply = this.stopping ? { status: 503, body: { error: 'the compute API is shutting down' } } : await this.dispatch(route, request, req);
    } catch (err) {
      if (err instanceof HttpError) {
        reply = { status: err.status, body: { error: err.message, ...err.extra }, close: err.close };
        if (err.detail) detail = ` (${err.detail})`;
      } else {
        this.opts.w.log.warning(`${logPrefix}request_id=${id} ${method} ${url.pathname} failed: ${(err as Error)?.stack ?? String(err)}`);
        reply = { status: 500, body: { error: (err as Error)?.message ?? String(err) } };
      }
    }
    entry.finish(reply, detail);
  }

  private async dispatch(route: Route | undefined, request: Request, req: http.IncomingMessage): Promise<Reply> {
    if (!route) throw new HttpError(404, `no route ${request.path}`);
    if (route.method !== request.method && !(route.method === 'GET' && request.method === 'HEAD')) {
      throw new HttpError(405, `method ${request.method} is not allowed on ${route.path} (use ${route.method})`);
    }
    if (route.auth) {
      const authorizer = this.opts.authorizer();
      if (authorizer) {
        const result = await authorizer.check(req.headers.authorization);
        if (!result.ok) throw new HttpError(result.status, result.error, {}, result.detail);
        request.claims = result.claims;
      }
    }
    return route.handler(request);
  }
}
