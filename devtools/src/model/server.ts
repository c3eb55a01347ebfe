import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { FleetError } from "@fleet/shared/errors";
import type { Logger } from "@fleet/shared/log";
import { ChatRequest, chunkEnvelope, completionBody, planAnswer, usageFor } from "./openai.js";
import { Scenario, turnIndex, type ScenarioInput, type ScenarioTurn } from "./scenario.js";

export interface ScriptedModelOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Played for any model id not named in `byModel`. */
  scenario: ScenarioInput;
  /**
   * Scenarios chosen by the request's model id, so one server (and one agent config naming several
   * models) can play different scripts per prompt.
   */
  byModel?: Record<string, ScenarioInput>;
  /** When set, a chat request without `Authorization: Bearer <apiKey>` is answered 401, as a provider would. */
  apiKey?: string;
  /**
   * Each streamed chunk carries `sent_at`, the epoch time (ms, with fractions: performance.timeOrigin +
   * performance.now()) it was written, so a client in the same process measures each chunk's latency.
   */
  stampChunks?: boolean;
  logger: Logger;
}

/** What the server saw of a chat request it answered or failed on purpose (for tests). */
export interface SeenRequest {
  model: string;
  stream: boolean;
  /** The request asked for usage in the stream (`stream_options.include_usage`). */
  includeUsage: boolean;
  side: boolean;
}

export interface ScriptedModel {
  /** Base URL ending in /v1, as an OpenAI-compatible client wants it. */
  readonly url: string;
  readonly port: number;
  /** Chat requests received so far (side requests included). */
  requests(): number;
  /** The chat requests received so far, oldest first. */
  seen(): SeenRequest[];
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export async function startScriptedModel(options: ScriptedModelOptions): Promise<ScriptedModel> {
  const fallback = Scenario.parse(options.scenario);
  const byModel = new Map(Object.entries(options.byModel ?? {}).map(([id, s]) => [id, Scenario.parse(s)]));
  const log = options.logger.child({ component: "scripted-model" });
  const models = ["scripted", ...byModel.keys()];
  // Failure budgets are the one piece of state: "fail twice, then answer" needs a count.
  const failuresServed = new Map<string, number>();
  let received = 0;
  const seen: SeenRequest[] = [];
  let closed: Promise<void> | undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status >= 500) log.error({ err }, "request failed");
      if (!res.headersSent)
        sendJson(res, status, {
          error: {
            message: err instanceof Error ? err.message : String(err),
            type: "invalid_request_error",
            details: err instanceof HttpError ? err.details : undefined,
          },
        });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname.replace(/\/+$/, "");
    if (req.method === "GET" && path === "/v1/models") {
      return sendJson(res, 200, {
        object: "list",
        data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "fleet" })),
      });
    }
    if (req.method === "POST" && path === "/v1/chat/completions") return chat(req, res);
    throw new HttpError(404, `no route ${req.method} ${path}`);
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`)
      throw new HttpError(401, "invalid api key");
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      throw err instanceof HttpError ? err : new HttpError(400, "body is not JSON");
    }
    const parsed = ChatRequest.safeParse(body);
    if (!parsed.success) throw new HttpError(400, "not a chat completion request", z.treeifyError(parsed.error));
    const request = parsed.data;
    received++;
    const scenario = byModel.get(request.model) ?? fallback;
    // Agents call the model without tools for side jobs (session titles, summaries): answered
    // without consuming a turn, so the script stays in step with the main conversation.
    const side = !request.tools || request.tools.length === 0;
    const index = turnIndex(request.messages);
    const streamOptions = (request as { stream_options?: { include_usage?: unknown } }).stream_options;
    seen.push({
      model: request.model,
      stream: request.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      side,
    });
    if (seen.length > 10_000) seen.shift();
    const turn: ScenarioTurn = side
      ? { type: "text", text: scenario.sideText }
      : (scenario.turns[index] ?? { type: "text", text: scenario.afterText });
    log.debug(
      {
        scenario: scenario.name,
        turn: side ? "side" : index,
        stream: request.stream === true,
        messages: request.messages.length,
      },
      "chat request",
    );
    log.trace({ request }, "chat request body");

    if (!side && turn.failure) {
      const key = `${byModel.has(request.model) ? request.model : ""}/${index}`;
      const served = failuresServed.get(key) ?? 0;
      if (turn.failure.times === undefined || served < turn.failure.times) {
        failuresServed.set(key, served + 1);
        if (turn.failure.kind === "hang") return; // left open until the client or close() ends it
        if (turn.failure.kind === "http_429") throw new HttpError(429, "scripted rate limit");
        throw new HttpError(500, "scripted failure");
      }
    }

    const answer = planAnswer(turn, scenario.chunkChars);
    const usage = usageFor(request, answer.completionChars);
    const id = `chatcmpl-${randomBytes(8).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    if (request.stream !== true)
      return sendJson(res, 200, JSON.parse(completionBody(id, request.model, created, answer, usage)));

    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const delay = turn.delayMs ?? scenario.delayMs;
    const gone = () => res.destroyed || res.writableEnded;
    for (const delta of answer.deltas) {
      if (delay > 0) await sleep(delay);
      if (gone()) return;
      const sentAt = options.stampChunks ? performance.timeOrigin + performance.now() : undefined;
      res.write(
        `data: ${chunkEnvelope(id, request.model, created, [{ index: 0, delta, finish_reason: null }], undefined, sentAt)}\n\n`,
      );
    }
    if (gone()) return;
    res.write(
      `data: ${chunkEnvelope(id, request.model, created, [{ index: 0, delta: {}, finish_reason: answer.finish }])}\n\n`,
    );
    res.write(`data: ${chunkEnvelope(id, request.model, created, [], usage)}\n\n`);
    res.end("data: [DONE]\n\n");
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(new FleetError("infra", `scripted model cannot listen: ${err.message}`, { cause: err })),
    );
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/v1`;
  log.info({ url }, "scripted model listening");

  return {
    url,
    port: address.port,
    requests: () => received,
    seen: () => [...seen],
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hanging requests and keep-alive sockets would hold close() open forever.
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, "request body too large"));
        req.destroy();
        return;
      }
      parts.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
