import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { z } from "zod";
import { Traceparent } from "../contracts/index.js";

/**
 * Traces of sessions (OpenTelemetry): one trace per session across the api, spawner, poller and
 * watchdog. A session's trace context is a W3C `traceparent`: the bus carries it in every message's
 * headers (a publish inside a span sends that span's), outside publishers may send their own, and
 * the session document keeps the one it began with (`trace`), so a stage acting on a session for
 * other reasons (a deadline, a cancel) adds its spans to the same trace. Spans are exported over
 * OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set;
 * otherwise nothing is recorded and these calls cost next to nothing.
 */

export const TelemetryEnv = z.object({
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
});
export type TelemetryEnv = z.infer<typeof TelemetryEnv>;

export interface Telemetry {
  /** Sends what is still buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const TRACER = "session-fleet";
const propagator = new W3CTraceContextPropagator();

/** Registers this process's tracer when an OTLP endpoint is configured; a no-op otherwise. */
export function startTelemetry(service: string, cfg: TelemetryEnv): Telemetry {
  const url =
    cfg.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (cfg.OTEL_EXPORTER_OTLP_ENDPOINT ? `${cfg.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, "")}/v1/traces` : undefined);
  if (!url) return { flush: async () => {}, shutdown: async () => {} };
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": cfg.OTEL_SERVICE_NAME ?? service }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }), scheduledDelayMillis: 500 })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagator);
  trace.setGlobalTracerProvider(provider);
  return { flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() };
}

/** The context a traceparent names: the root context when it is absent or not a valid one. */
function contextOf(traceparent: string | undefined): Context {
  if (!traceparent || !Traceparent.safeParse(traceparent).success) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
}

/** The value when it is a valid traceparent (from an HTTP header or a message), else undefined. */
export function validTraceparent(value: unknown): string | undefined {
  const parsed = Traceparent.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** The traceparent of the span running now; undefined when none is recorded. */
export function activeTraceparent(): string | undefined {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return undefined;
  const carrier: Record<string, string> = {};
  propagator.inject(context.active(), carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

/**
 * Runs `fn` in a span, ending it when `fn` settles and recording a failure. Its parent is the trace
 * `parent` names (a traceparent from a message or a session document), or else the span running
 * now; spans started inside `fn` are its children.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: { parent?: string | undefined; kind?: SpanKind } = {},
): Promise<T> {
  const parent = options.parent !== undefined ? contextOf(options.parent) : context.active();
  const span = trace.getTracer(TRACER).startSpan(name, { attributes, kind: options.kind ?? SpanKind.INTERNAL }, parent);
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** A span the caller ends, under the span running now (for work spanning several calls: an agent's tool call). */
export function startChildSpan(name: string, attributes: Attributes): Span {
  return trace.getTracer(TRACER).startSpan(name, { attributes }, context.active());
}

/** A span of work that is over, with its own times (an agent's tool call, timed by the agent), under the span running now. */
export function recordSpan(name: string, attributes: Attributes, startMs: number, endMs: number, error?: string): void {
  const span = trace.getTracer(TRACER).startSpan(name, { attributes, startTime: startMs }, context.active());
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end(Math.max(startMs, endMs));
}

export { SpanKind, type Span };
