import type { IncomingMessage, ServerResponse } from "node:http";
import {
  SCHEMA_VERSION,
  errorMessage,
  type Bus,
  type GatewayGrant,
  type Logger,
  type UsageCall,
  type UsageStore,
} from "@fleet/shared";
import type { GatewayMetrics } from "./metrics.js";
import { costOf, type PriceTable } from "./prices.js";
import { UsageScanner, readUsage, type ReportedUsage, type Upstream } from "./upstream.js";
import type { Views } from "./views.js";

/** What relaying needs of the gateway. */
export interface RelayContext {
  deps: {
    store: Pick<UsageStore, "recordUsage">;
    bus: Pick<Bus, "sendProgress">;
    logger: Logger;
    settings: { prices: PriceTable };
  };
  metrics: GatewayMetrics;
  views: Views;
  upstream: Upstream;
}

export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  grant: GatewayGrant;
  body: { model: string; stream?: boolean | undefined; stream_options?: Record<string, unknown> | undefined };
  requestBytes: number;
  /** The requested model, then the session's fallbacks after it. */
  candidates: readonly string[];
  callId: string;
  /** performance.now() when the call reached the gateway. */
  receivedAt: number;
}

/** Thrown when no model answered at all (the agent gets it as an OpenAI-style 502). */
export class UpstreamUnavailable extends Error {}

/**
 * Sends the call upstream on its model, and on the next fallback model when the upstream answers
 * 429 or 5xx (or nothing) before any byte of an answer; then passes the answer on as it comes.
 */
export async function relay(ctx: RelayContext, call: Call): Promise<void> {
  const abort = new AbortController();
  // The agent hung up: stop the upstream call (its bytes so far are still counted).
  call.res.once("close", () => {
    if (!call.res.writableFinished) abort.abort();
  });
  const stream = call.body.stream === true;
  for (let i = 0; i < call.candidates.length; i++) {
    const model = call.candidates[i] as string;
    const next = call.candidates[i + 1];
    const payload = Buffer.from(
      JSON.stringify({
        ...call.body,
        model,
        // Usage comes as a last chunk only when asked for; the ledger needs it.
        ...(stream ? { stream_options: { ...call.body.stream_options, include_usage: true } } : {}),
      }),
    );
    let up: IncomingMessage;
    try {
      up = await ctx.upstream.open(payload, abort.signal);
    } catch (err) {
      if (abort.signal.aborted) return;
      const why = `did not answer (${errorMessage(err)})`;
      if (next) {
        fallback(ctx, call, model, next, why, "none");
        continue;
      }
      throw new UpstreamUnavailable(`model ${model} ${why}`);
    }
    const status = up.statusCode ?? 502;
    if ((status === 429 || status >= 500) && next) {
      up.resume();
      fallback(ctx, call, model, next, `answered ${status}`, String(status));
      continue;
    }
    await pass(ctx, call, up, model, status, stream);
    return;
  }
}

function fallback(ctx: RelayContext, call: Call, from: string, to: string, why: string, status: string): void {
  ctx.metrics.fallbacks.inc({ from, to, status });
  const line = `Model ${from} ${why}; retrying on fallback model ${to}`;
  ctx.deps.logger.info({ sessionId: call.grant.sessionId, from, to, why }, "model fallback");
  void logLine(ctx, call.grant, line, `gw:fallback:${call.callId}:${to}`.slice(0, 200));
}

/**
 * The switch goes to the session's log through the poller watching it (the log's one writer). A
 * call can come before the poller took the session over (between the prompt and `running`): asked
 * again for a while.
 */
async function logLine(ctx: RelayContext, grant: GatewayGrant, line: string, key: string): Promise<void> {
  for (let i = 0; i < 15; i++) {
    try {
      const reply = await ctx.deps.bus.sendProgress(
        {
          v: SCHEMA_VERSION,
          sessionId: grant.sessionId,
          attempt: grant.attempt,
          lines: [{ kind: "system", line, key }],
        },
        2_000,
      );
      if (reply.ok || reply.code !== "unavailable") return;
    } catch {
      // Nobody watches the session yet, or the bus is away: try again.
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
  ctx.deps.logger.warn({ sessionId: grant.sessionId, line }, "model switch not written to the session's log");
}

async function pass(
  ctx: RelayContext,
  call: Call,
  up: IncomingMessage,
  model: string,
  status: number,
  stream: boolean,
): Promise<void> {
  const { res } = call;
  const firstByteMs = performance.now() - call.receivedAt;
  ctx.metrics.firstByte.observe({ model }, firstByteMs / 1000);
  const contentType = String(up.headers["content-type"] ?? "application/json");
  if (status < 200 || status >= 300) {
    // The provider's refusal goes to the agent as it said it (without the key, should it echo it).
    const text = ctx.upstream.redact((await readAll(up, 1024 * 1024)).toString("utf8"));
    res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text) });
    res.end(text);
    ctx.metrics.calls.inc({ project: call.grant.projectId, model, status: String(status) });
    return;
  }
  const headers = { "content-type": contentType, "cache-control": "no-cache", "x-fleet-model": model };
  let usage: ReportedUsage | undefined;
  let responseBytes = 0;
  if (stream && contentType.includes("text/event-stream")) {
    res.writeHead(status, headers);
    const scanner = new UsageScanner();
    await new Promise<void>((resolve) => {
      up.on("data", (chunk: Buffer) => {
        // On first, looked at after: the chunk waits for nothing of the gateway's.
        if (!res.write(chunk)) {
          up.pause();
          res.once("drain", () => up.resume());
        }
        scanner.feed(chunk);
      });
      up.once("end", () => {
        res.end();
        resolve();
      });
      up.once("error", () => {
        res.destroy();
        resolve();
      });
      up.once("close", () => resolve());
    });
    usage = scanner.usage;
    responseBytes = scanner.bytes;
  } else {
    const body = await readAll(up, 64 * 1024 * 1024);
    res.writeHead(status, { ...headers, "content-length": body.length });
    res.end(body);
    responseBytes = body.length;
    try {
      usage = readUsage((JSON.parse(body.toString("utf8")) as { usage?: unknown }).usage);
    } catch {
      usage = undefined;
    }
  }
  record(ctx, call, {
    model,
    status,
    stream,
    usage,
    responseBytes,
    firstByteMs,
    durationMs: performance.now() - call.receivedAt,
  });
}

function record(
  ctx: RelayContext,
  call: Call,
  r: {
    model: string;
    status: number;
    stream: boolean;
    usage: ReportedUsage | undefined;
    responseBytes: number;
    firstByteMs: number;
    durationMs: number;
  },
): void {
  // A provider that reports no usage is still counted, from the bytes (about 4 a token, envelopes
  // included: an overestimate, which keeps budgets on the safe side).
  const tokens = r.usage ?? {
    tokensIn: Math.ceil(call.requestBytes / 4),
    tokensOut: Math.ceil(r.responseBytes / 4),
    cachedTokens: 0,
  };
  const { grant } = call;
  const rec: UsageCall = {
    callId: call.callId,
    sessionId: grant.sessionId,
    projectId: grant.projectId,
    attempt: grant.attempt,
    model: r.model,
    ...(r.model !== call.body.model ? { requestedModel: call.body.model } : {}),
    ...tokens,
    cost: costOf(ctx.deps.settings.prices, r.model, tokens),
    ...(r.usage ? {} : { estimated: true }),
    stream: r.stream,
    status: r.status,
    firstByteMs: Math.round(r.firstByteMs * 1000) / 1000,
    durationMs: Math.round(r.durationMs * 1000) / 1000,
    at: Date.now(),
  };
  const labels = { project: grant.projectId, model: r.model };
  ctx.metrics.calls.inc({ ...labels, status: String(r.status) });
  ctx.metrics.tokens.inc({ ...labels, kind: "in" }, rec.tokensIn);
  ctx.metrics.tokens.inc({ ...labels, kind: "out" }, rec.tokensOut);
  ctx.metrics.tokens.inc({ ...labels, kind: "cached" }, rec.cachedTokens);
  ctx.metrics.cost.inc(labels, rec.cost);
  const counted = ctx.views.counted(rec);
  void writeLedger(ctx, rec).then((written) => {
    if (written) counted.confirmed();
  });
}

/**
 * One store operation per call; retried a few times through a store outage (a write the store
 * applied but whose answer was lost is then counted twice in the totals, never in the call records).
 */
async function writeLedger(ctx: RelayContext, rec: UsageCall): Promise<boolean> {
  for (let i = 0; ; i++) {
    try {
      await ctx.deps.store.recordUsage(rec);
      ctx.metrics.ledgerWrites.inc({ result: "ok" });
      return true;
    } catch (err) {
      if (i >= 4) {
        ctx.metrics.ledgerWrites.inc({ result: "failed" });
        ctx.deps.logger.error(
          { call: rec, err: errorMessage(err) },
          "ledger write failed; the call is missing from the ledger",
        );
        return false;
      }
      ctx.metrics.ledgerWrites.inc({ result: "retried" });
      await new Promise((r) => setTimeout(r, 250 * 4 ** i));
    }
  }
}

function readAll(stream: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= max) parts.push(c);
    });
    stream.once("end", () => resolve(Buffer.concat(parts)));
    stream.once("error", () => resolve(Buffer.concat(parts)));
    stream.once("close", () => resolve(Buffer.concat(parts)));
  });
}
