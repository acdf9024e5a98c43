/**
 * The HTTP server of the compute API, on Node's `http`/`https`, shaped like
 * compute_ctl's (compute_tools/src/http/server.rs): every response carries
 * `x-request-id` (the caller's, or a new UUID), errors are JSON
 * `{"error": "..."}` (compute_ctl's `GenericAPIError`), each request is one
 * log line with its status and latency, and each is a span whose parent is
 * the caller's `traceparent`. Routes needing authorization go through
 * {@link Authorizer} first; unknown paths answer 404, wrong methods 405.
 */
import { randomUUID } from 'crypto';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';

import type { JWTPayload } from 'jose';

import type { WorkerContext } from '../../runtime/index';
import type { Authorizer } from './auth';
import { extractContext, traceIdOf, Tracing, type Context, type Span } from './tracing';

/** Largest request body read (bytes). */
const MAX_BODY = 16 * 1024 * 1024;

/** An error answered with its status and `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** More fields of the JSON body. */
    readonly extra: Record<string, unknown> = {},
    /** Said in the log line only. */
    readonly detail?: string,
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
  authorizer(): Authorizer | null;
  /** Called for every answered request. */
  observe?(route: string, status: number, ms: number): void;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, `request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export class ApiServer {
  private server: http.Server | https.Server | null = null;

  constructor(private readonly opts: ServerOptions) {}

  /** Listen on `host:port`, over TLS when `tls` is given. Resolves with the bound address. */
  listen(host: string, port: number, tls?: { key: Buffer; cert: Buffer }): Promise<AddressInfo> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 5000;
    this.server = server;
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

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    const header = req.headers['x-request-id'];
    const id = (Array.isArray(header) ? header[0] : header) || randomUUID();
    const url = new URL(req.url ?? '/', 'http://compute');
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
    let reply: Reply;
    let detail = '';
    try {
      reply = await this.dispatch(route, request, req);
    } catch (err) {
      if (err instanceof HttpError) {
        reply = { status: err.status, body: { error: err.message, ...err.extra } };
        if (err.detail) detail = ` (${err.detail})`;
      } else {
        this.opts.w.log.warning(`${logPrefix}request_id=${id} ${method} ${url.pathname} failed: ${(err as Error)?.stack ?? String(err)}`);
        reply = { status: 500, body: { error: (err as Error)?.message ?? String(err) } };
      }
    }
    const body = reply.text ?? JSON.stringify(reply.body ?? null);
    res.writeHead(reply.status, {
      'content-type': reply.contentType ?? 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': id,
      ...(reply.status === 405 && route ? { allow: route.method } : {}),
    });
    res.end(body, () => reply.sent?.());
    const ms = performance.now() - t0;
    span.setAttribute('http.response.status_code', reply.status);
    Tracing.end(span, reply.status >= 500 ? new Error(String((reply.body as { error?: string })?.error ?? reply.status)) : undefined);
    this.opts.observe?.(route?.path ?? 'unknown', reply.status, ms);
    const error = reply.status >= 400 && reply.body && typeof reply.body === 'object' ? ` error=${JSON.stringify((reply.body as { error?: unknown }).error)}` : '';
    this.opts.w.log.info(`${logPrefix}request_id=${id} ${method} ${url.pathname}${url.search} ${reply.status} ${ms.toFixed(1)} ms${error}${detail}`);
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
