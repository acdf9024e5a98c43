/**
 * Trace context, as compute_ctl has it (compute_tools/src/logger.rs,
 * libs/tracing-utils): W3C `traceparent`/`tracestate`, from the server's
 * environment (`TRACEPARENT`, `TRACESTATE`) for the startup span and from
 * each request's headers for its span; spans exported over OTLP/HTTP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
 * is in the server's environment, with OpenTelemetry's 2.x SDK (the line
 * that runs on Node 18). Contexts are passed explicitly: no context
 * manager (async hooks) is installed in the server process.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

export type { Context, Span };

/** The service name spans carry unless `OTEL_SERVICE_NAME` says otherwise (compute_ctl's). */
export const SERVICE_NAME = 'compute_ctl';

const propagator = new W3CTraceContextPropagator();

const getter = {
  keys: (carrier: Record<string, string | string[] | undefined>) => Object.keys(carrier),
  get: (carrier: Record<string, string | string[] | undefined>, key: string) => carrier[key.toLowerCase()],
};

/** The W3C trace context in `carrier` (lower-case header names), or the root context. */
export function extractContext(carrier: Record<string, string | string[] | undefined>): Context {
  return propagator.extract(ROOT_CONTEXT, carrier, getter);
}

/** The trace id of `ctx`'s span when it was given one by a caller, else null. */
export function traceIdOf(ctx: Context): string | null {
  const sc = trace.getSpanContext(ctx);
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : null;
}

export class Tracing {
  private readonly provider: BasicTracerProvider;
  /** Where spans are sent, or null (spans are made and dropped). */
  readonly endpoint: string | null;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || null;
    const enabled = this.endpoint !== null && env.OTEL_SDK_DISABLED !== 'true';
    const processors = [];
    if (enabled) {
      // Loaded only when used: the exporter pulls in OTLP's transformers.
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
      // OTEL_BSP_SCHEDULE_DELAY as the SDK specification has it (this SDK line reads it no more).
      const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
      processors.push(new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: delay > 0 ? delay : 1000 }));
    } else {
      this.endpoint = null;
    }
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || SERVICE_NAME }),
      spanProcessors: processors,
    });
  }

  /** The context of the compute's startup: from TRACEPARENT/TRACESTATE in the environment, or the root. */
  startupContext(env: NodeJS.ProcessEnv = process.env): Context {
    const carrier: Record<string, string> = {};
    if (env.TRACEPARENT) carrier.traceparent = env.TRACEPARENT;
    if (env.TRACESTATE) carrier.tracestate = env.TRACESTATE;
    return extractContext(carrier);
  }

  /** Start a span under `parent`; `server` marks a request's span. */
  start(name: string, parent: Context, attributes: Record<string, string | number | boolean> = {}, server = false): Span {
    return this.provider
      .getTracer('pg_tsworker.compute')
      .startSpan(name, { kind: server ? SpanKind.SERVER : SpanKind.INTERNAL, attributes }, parent);
  }

  /** The context whose parent is `span`. */
  static contextOf(span: Span, parent: Context): Context {
    return trace.setSpan(parent, span);
  }

  /** End `span`, recording `err` as its error if given. */
  static end(span: Span, err?: unknown): void {
    if (err !== undefined) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    }
    span.end();
  }

  /** Send what is buffered now. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Flush and stop, within `timeoutMs`. */
  async shutdown(timeoutMs = 2000): Promise<void> {
    await Promise.race([this.provider.shutdown(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
