import { createOpencodeClient, type OpencodeClient } from "@opencode-ai/sdk/v2";
import type { z } from "zod";
import type { Logger } from "../../log/index.js";
import { FleetError } from "../../errors/index.js";
import type {
  AgentClient,
  AgentEndpoint,
  AgentEvent,
  AgentFileDiff,
  AgentMessage,
  AgentPrompt,
  AgentSessionStatus,
  AgentTodo,
} from "../port.js";
import { PROVIDER_ID } from "./config.js";
import { callFailed, checkResponse, streamFailed, type SdkResult } from "./errors.js";
import { toAgentEvent } from "./events.js";
import { messageId } from "./ids.js";
import { contentsFromPatch } from "./patch.js";
import {
  DiffList,
  Health,
  MessageList,
  SessionInfo,
  StatusMap,
  TodoList,
  toAgentMessages,
  toAgentStatus,
  toAgentTodos,
} from "./wire.js";

export interface OpencodeClientOptions {
  /** Bound of every request but the event stream. A loaded 2-core machine can keep a server silent for seconds. */
  requestTimeoutMs?: number;
  /** The event stream ends (retryably) when nothing, not even a heartbeat (~10 s apart), came for this long. */
  eventIdleMs?: number;
  /** Basic-auth user; OpenCode's default unless OPENCODE_SERVER_USERNAME was set for the server. */
  username?: string;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_EVENT_IDLE_MS = 30_000;

/** The AgentClient port over OpenCode 1.x's V1 routes, through `@opencode-ai/sdk/v2`. */
export class OpencodeAgentClient implements AgentClient {
  private readonly sdk: OpencodeClient;
  private readonly timeoutMs: number;
  private readonly eventIdleMs: number;
  private readonly log: Logger;
  /** Server clock minus ours, learnt from a created session; message ids must follow the server's clock. */
  private clockOffsetMs = 0;

  constructor(endpoint: AgentEndpoint, logger: Logger, options: OpencodeClientOptions = {}) {
    this.timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.eventIdleMs = options.eventIdleMs ?? DEFAULT_EVENT_IDLE_MS;
    this.log = logger.child({ component: "opencode-client", agent: endpoint.baseUrl });
    const credentials = Buffer.from(`${options.username ?? "opencode"}:${endpoint.password}`).toString("base64");
    this.sdk = createOpencodeClient({
      baseUrl: endpoint.baseUrl.replace(/\/+$/, ""),
      headers: { Authorization: `Basic ${credentials}` },
    });
  }

  async health(timeoutMs: number): Promise<boolean> {
    try {
      const body = await this.call("health", (o) => this.sdk.global.health(o), Health, timeoutMs);
      return body.healthy;
    } catch (err) {
      // A refused password never heals; everything else (not up yet, timeout) is "not healthy yet".
      if (err instanceof FleetError && !err.retryable) throw err;
      return false;
    }
  }

  async createSession(title: string): Promise<{ id: string }> {
    const sent = Date.now();
    const session = await this.call("create session", (o) => this.sdk.session.create({ title }, o), SessionInfo);
    const created = session.time?.created;
    if (created !== undefined) this.clockOffsetMs = Math.round(created - (sent + Date.now()) / 2);
    return { id: session.id };
  }

  async prompt(sessionId: string, prompt: AgentPrompt): Promise<{ messageId: string }> {
    // The id is made here because prompt_async answers 204 without a body, and the diff route
    // needs the id of the user message the changes are counted from.
    const messageID = messageId(Date.now() + this.clockOffsetMs);
    await this.call("prompt", (o) =>
      this.sdk.session.promptAsync(
        {
          sessionID: sessionId,
          messageID,
          model: { providerID: PROVIDER_ID, modelID: prompt.model },
          ...(prompt.system ? { system: prompt.system } : {}),
          parts: [{ type: "text", text: prompt.text }],
        },
        o,
      ),
    );
    return { messageId: messageID };
  }

  async status(): Promise<Record<string, AgentSessionStatus>> {
    const map = await this.call("status", (o) => this.sdk.session.status(undefined, o), StatusMap);
    return Object.fromEntries(Object.entries(map).map(([id, s]) => [id, toAgentStatus(s.type)]));
  }

  async messages(sessionId: string): Promise<AgentMessage[]> {
    return toAgentMessages(
      await this.call("messages", (o) => this.sdk.session.messages({ sessionID: sessionId }, o), MessageList),
    );
  }

  async todos(sessionId: string): Promise<AgentTodo[]> {
    return toAgentTodos(await this.call("todos", (o) => this.sdk.session.todo({ sessionID: sessionId }, o), TodoList));
  }

  async diff(sessionId: string, messageId: string): Promise<AgentFileDiff[]> {
    const list = await this.call(
      "diff",
      (o) => this.sdk.session.diff({ sessionID: sessionId, messageID: messageId }, o),
      DiffList,
    );
    const out: AgentFileDiff[] = [];
    for (const d of list) {
      const file = d.file ?? d.path;
      if (!file) continue;
      const contents = d.patch ? contentsFromPatch(d.patch) : undefined;
      out.push({
        file,
        // Absent means "did not exist" (added, deleted) or "could not be read back" (binary).
        ...(contents && d.status !== "added" ? { before: contents.before } : {}),
        ...(contents && d.status !== "deleted" ? { after: contents.after } : {}),
        ...(d.additions !== undefined ? { additions: d.additions } : {}),
        ...(d.deletions !== undefined ? { deletions: d.deletions } : {}),
      });
    }
    return out;
  }

  async abort(sessionId: string): Promise<void> {
    // OpenCode answers true for idle and unknown sessions alike; whether a busy one really stops is
    // for the caller to watch (it does not always).
    await this.call("abort", (o) => this.sdk.session.abort({ sessionID: sessionId }, o));
  }

  async *events(signal: AbortSignal): AsyncIterable<AgentEvent> {
    const local = new AbortController();
    const stop = (): void => local.abort();
    signal.addEventListener("abort", stop, { once: true });
    let failure: unknown;
    let silent = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        local.abort();
      }, this.eventIdleMs);
    };
    try {
      arm();
      const { stream } = await this.sdk.event.subscribe(undefined, {
        signal: local.signal,
        // One connection per call: reconnecting (and reconciling what was missed) is the caller's.
        sseMaxRetryAttempts: 1,
        onSseError: (err) => {
          failure = err;
        },
      });
      for await (const raw of stream) {
        arm();
        const event = toAgentEvent(raw);
        if (event) yield event;
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
      local.abort();
    }
    if (signal.aborted) return;
    if (silent)
      throw new FleetError("agent", `agent event stream silent for ${Math.round(this.eventIdleMs / 1000)} s`, {
        retryable: true,
      });
    if (failure !== undefined) throw streamFailed(failure);
    this.log.debug("agent event stream ended");
  }

  /** One bounded request: transport failures, HTTP errors and unexpected bodies become FleetErrors. */
  private async call<S extends z.ZodType = z.ZodUnknown>(
    op: string,
    run: (options: { signal: AbortSignal }) => Promise<SdkResult>,
    schema?: S,
    timeoutMs = this.timeoutMs,
  ): Promise<z.infer<S>> {
    const signal = AbortSignal.timeout(timeoutMs);
    let result: SdkResult;
    try {
      result = await run({ signal });
    } catch (err) {
      throw callFailed(op, err, signal, timeoutMs);
    }
    const data = checkResponse(op, result, signal, timeoutMs);
    if (!schema) return data as z.infer<S>;
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      throw new FleetError("agent", `${op}: unexpected answer from the agent server`, {
        retryable: false,
        details: parsed.error.issues,
      });
    }
    return parsed.data;
  }
}
