import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { StringDecoder } from "node:string_decoder";

export interface UpstreamOptions {
  /** The provider's OpenAI-compatible base URL (ending in /v1). */
  baseUrl: string;
  apiKey: string;
  /** How long the provider may take to answer with its headers. */
  firstByteTimeoutMs: number;
}

/**
 * The provider, reached over kept-alive connections. The key is added here and nowhere else: it
 * never enters a log line, a document or an answer to an agent.
 */
export class Upstream {
  private readonly url: URL;
  private readonly agent: http.Agent;

  constructor(private readonly options: UpstreamOptions) {
    this.url = new URL(`${options.baseUrl.replace(/\/+$/, "")}/chat/completions`);
    this.agent =
      this.url.protocol === "https:"
        ? new https.Agent({ keepAlive: true, maxSockets: 512 })
        : new http.Agent({ keepAlive: true, maxSockets: 512 });
  }

  /** Resolves with the provider's response once its status and headers arrived; rejects on a network error or timeout. */
  open(body: Buffer, signal: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const send = this.url.protocol === "https:" ? https.request : http.request;
      const req = send(this.url, {
        method: "POST",
        agent: this.agent,
        signal,
        headers: {
          "content-type": "application/json",
          "content-length": body.length,
          accept: "text/event-stream, application/json",
          authorization: `Bearer ${this.options.apiKey}`,
        },
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${this.options.firstByteTimeoutMs} ms`)),
        this.options.firstByteTimeoutMs,
      );
      req.once("response", (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body);
    });
  }

  /** An error body from the provider, with the key taken out should it echo it. */
  redact(text: string): string {
    return this.options.apiKey.length >= 4 ? text.split(this.options.apiKey).join("[redacted]") : text;
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface ReportedUsage {
  tokensIn: number;
  tokensOut: number;
  cachedTokens: number;
}

/** OpenAI's `usage` object (prompt_tokens_details.cached_tokens where the provider reports it). */
export function readUsage(u: unknown): ReportedUsage | undefined {
  if (!u || typeof u !== "object") return undefined;
  const o = u as Record<string, unknown>;
  const n = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.round(v) : 0);
  if (typeof o.prompt_tokens !== "number" && typeof o.completion_tokens !== "number") return undefined;
  const details = (o.prompt_tokens_details ?? {}) as Record<string, unknown>;
  return {
    tokensIn: n(o.prompt_tokens),
    tokensOut: n(o.completion_tokens),
    cachedTokens: n(details.cached_tokens ?? o.cached_tokens),
  };
}

const USAGE = '"usage"';
const USAGE_NULL = /"usage"\s*:\s*null/;

/**
 * Watches a server-sent event stream go by for its usage report, without holding it up: the chunk
 * is sent on before it is looked at, and only complete lines that mention a non-null `usage` are parsed.
 */
export class UsageScanner {
  private readonly decoder = new StringDecoder("utf8");
  private partial = "";
  bytes = 0;
  usage: ReportedUsage | undefined;

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    const text = this.partial + this.decoder.write(chunk);
    let start = 0;
    let usage = text.indexOf(USAGE);
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      if (usage !== -1 && usage < nl) {
        this.line(text.slice(start, nl));
        usage = text.indexOf(USAGE, nl + 1);
      }
      start = nl + 1;
    }
    this.partial = text.slice(start);
    // A line this long is not an event we can use; do not let it grow without bound.
    if (this.partial.length > 4 * 1024 * 1024) this.partial = "";
  }

  private line(line: string): void {
    const data = line.startsWith("data:") ? line.slice(5).trim() : "";
    if (!data || USAGE_NULL.test(data)) return;
    try {
      const found = readUsage((JSON.parse(data) as { usage?: unknown }).usage);
      if (found) this.usage = found;
    } catch {
      // Not JSON: nothing to count.
    }
  }
}
