import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opencodeRuntime, type AgentClient, type AgentEvent, type AgentToolPart } from "../shared/src/agent/index.js";
import { FleetError } from "../shared/src/errors/index.js";
import {
  DEMO_FILE,
  DEMO_TODOS,
  SCENARIOS,
  TEXT_ONLY_ANSWER,
  startScriptedModel,
  type ScriptedModel,
} from "../devtools/src/model/index.js";
import { eventually, logger, present } from "./support/fixtures.js";
import { startOpencodeServer, type OpencodeServer } from "./support/opencode-harness.js";

/**
 * The OpenCode adapter against a real `opencode serve` (1.18.33) driven by the scripted model: one
 * server for the whole file (2 cores: servers are CPU-heavy to start). Each test makes its own agent
 * sessions and reads only their events, so any one of them runs alone (`-t`) or in any order.
 */

const runtime = opencodeRuntime({ logger, client: { requestTimeoutMs: 15_000 } });
const PASSWORD = "test-password-not-secret";

/** Follows the event stream in the background so tests can wait for what it shows. */
class EventLog {
  readonly events: Array<{ at: number; event: AgentEvent }> = [];
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;
  constructor(client: AgentClient) {
    this.done = (async () => {
      while (!this.stop.signal.aborted) {
        try {
          for await (const event of client.events(this.stop.signal)) this.events.push({ at: Date.now(), event });
        } catch {
          // reconnect below
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  }
  of(sessionId: string): Array<{ at: number; event: AgentEvent }> {
    return this.events.filter(({ event: e }) =>
      "sessionId" in e ? e.sessionId === sessionId : e.type === "part" && e.part.sessionId === sessionId,
    );
  }
  async close(): Promise<void> {
    this.stop.abort();
    await this.done;
  }
}

function toolParts(entries: Array<{ event: AgentEvent }>): AgentToolPart[] {
  return entries.flatMap(({ event }) => (event.type === "part" && event.part.kind === "tool" ? [event.part] : []));
}

describe("OpenCode adapter against a real server", () => {
  let model: ScriptedModel;
  let server: OpencodeServer;
  let client: AgentClient;
  let events: EventLog;
  const measured: Record<string, number> = {};

  beforeAll(async () => {
    model = await startScriptedModel({
      scenario: present(SCENARIOS.demo, "the demo scenario"),
      byModel: { ...SCENARIOS },
      logger,
    });
    server = await startOpencodeServer({
      runtime,
      password: PASSWORD,
      model: { baseUrl: model.url, apiKey: "scripted-key", models: ["demo", "text-only", "slow"], maxTokens: 4_096 },
    });
    client = runtime.connect({ baseUrl: server.baseUrl, password: PASSWORD });
    await eventually(() => client.health(2_000), 30_000, 100);
    measured.spawnToListeningMs = server.listeningAt - server.startedAt;
    measured.spawnToHealthyMs = Date.now() - server.startedAt;
    // One stream for the file, followed from before any test prompts, so none misses its first events.
    events = new EventLog(client);
    // OpenCode greets a new stream with server.connected (a heartbeat here): from then on it is live.
    await eventually(() => events.events.some(({ event }) => event.type === "heartbeat"), 15_000, 50);
  }, 90_000);

  afterAll(async () => {
    await events?.close();
    await server?.stop();
    await model?.close();
    process.stdout.write(`[agent-opencode] measured: ${JSON.stringify(measured)}\n`);
  });

  it("is healthy, and says so within the client's timeout", async () => {
    expect(await client.health(2_000)).toBe(true);
    expect(measured.spawnToHealthyMs).toBeGreaterThan(0);
  }, 40_000);

  it("refuses requests without the right password", async () => {
    const raw = await fetch(`${server.baseUrl}/session/status`);
    expect(raw.status).toBe(401);
    const intruder = runtime.connect({ baseUrl: server.baseUrl, password: "wrong" });
    const err = await intruder.status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetError);
    expect(err).toMatchObject({ code: "agent", retryable: false, message: "agent server refused the password" });
    await expect(intruder.health(2_000)).rejects.toMatchObject({ retryable: false });
    const stream = intruder.events(AbortSignal.timeout(10_000))[Symbol.asyncIterator]();
    await expect(stream.next()).rejects.toMatchObject({ code: "agent", retryable: false });
  });

  it("runs the demo scenario: write, bash, todowrite, answer", async () => {
    const session = await client.createSession("demo session");
    const sentAt = Date.now();
    const { messageId } = await client.prompt(session.id, { text: "Create hello.txt and show it.", model: "demo" });
    measured.promptSendMs = Date.now() - sentAt;
    expect(messageId).toMatch(/^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$/);

    await eventually(() => events.of(session.id).some(({ event }) => event.type === "idle"), 60_000, 50);
    const mine = events.of(session.id);
    const firstTool = mine.find(({ event }) => event.type === "part" && event.part.kind === "tool");
    const idle = mine.find(({ event }) => event.type === "idle");
    measured.promptToFirstToolPartMs = (firstTool?.at ?? NaN) - sentAt;
    measured.promptToIdleMs = (idle?.at ?? NaN) - sentAt;

    expect(mine.some(({ event }) => event.type === "status" && event.status === "busy")).toBe(true);
    const tools = toolParts(mine);
    for (const name of ["write", "bash", "todowrite"]) {
      const completed = tools.find((p) => p.tool === name && p.status === "completed");
      expect(completed, `${name} completed`).toBeDefined();
      expect(completed?.callId).toBeTruthy();
      expect(completed?.startedAt).toBeTypeOf("number");
      expect(completed?.endedAt).toBeTypeOf("number");
    }
    // A pending tool part has no input yet (OpenCode sends `{}` and the raw text); completed ones do.
    expect(tools.find((p) => p.tool === "write" && p.status === "completed")?.input).toEqual({
      filePath: DEMO_FILE.path,
      content: DEMO_FILE.content,
    });
    expect(tools.find((p) => p.tool === "bash" && p.status === "completed")?.output).toContain(
      DEMO_FILE.content.trim(),
    );
    const todoEvent = mine.find(({ event }) => event.type === "todos");
    expect(todoEvent?.event).toMatchObject({ type: "todos", todos: DEMO_TODOS.map((t) => ({ ...t })) });

    expect(readFileSync(join(server.workspace, DEMO_FILE.path), "utf8")).toBe(DEMO_FILE.content);

    const messages = await client.messages(session.id);
    expect(messages[0]).toMatchObject({ id: messageId, role: "user" });
    const assistant = messages.filter((m) => m.role === "assistant");
    expect(assistant.map((m) => m.finish)).toEqual(["tool-calls", "tool-calls", "tool-calls", "stop"]);
    for (const m of assistant) {
      const finish = m.parts.find((p) => p.kind === "step-finish");
      expect(finish?.kind === "step-finish" && finish.tokens.input > 0 && finish.tokens.output > 0).toBe(true);
    }
    expect(assistant[0]?.parts.some((p) => p.kind === "reasoning")).toBe(true);
    expect(assistant.at(-1)?.parts.find((p) => p.kind === "text")).toMatchObject({
      text: expect.stringContaining("Done."),
    });

    expect(await client.todos(session.id)).toEqual(DEMO_TODOS.map((t) => ({ ...t })));

    const diffs = await client.diff(session.id, messageId);
    expect(diffs).toEqual([{ file: DEMO_FILE.path, after: DEMO_FILE.content, additions: 1, deletions: 0 }]);

    await client.abort(session.id); // idle: a no-op that must not throw
    expect((await client.status())[session.id]).toBeUndefined();
  }, 90_000);

  it("continues a session with a second prompt (message ids stay in order)", async () => {
    const session = await client.createSession("two prompts");
    const first = await client.prompt(session.id, { text: "Say hello.", model: "text-only" });
    await eventually(
      async () => (await client.messages(session.id)).some((m) => m.role === "assistant" && m.finish === "stop"),
      60_000,
      100,
    );
    const second = await client.prompt(session.id, { text: "Anything else?", model: "text-only", system: "Be brief." });
    expect(second.messageId > first.messageId).toBe(true);
    const messages = await eventually(
      async () => {
        const list = await client.messages(session.id);
        return list.filter((m) => m.role === "assistant" && m.finish === "stop").length === 2 ? list : undefined;
      },
      60_000,
      100,
    );
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(messages[2]?.id).toBe(second.messageId);
    expect(messages[1]?.parts.find((p) => p.kind === "text")).toMatchObject({ text: TEXT_ONLY_ANSWER });
    await eventually(async () => (await client.status())[session.id] === undefined, 10_000, 100);
  }, 90_000);

  it("aborts a busy session", async () => {
    const session = await client.createSession("abort me");
    await client.prompt(session.id, { text: "Sleep.", model: "slow" });
    await eventually(
      () => toolParts(events.of(session.id)).some((p) => p.tool === "bash" && p.status === "running"),
      60_000,
      50,
    );
    expect((await client.status())[session.id]).toBe("busy");
    const abortedAt = Date.now();
    await client.abort(session.id);
    await eventually(async () => (await client.status())[session.id] === undefined, 20_000, 100);
    measured.abortToIdleMs = Date.now() - abortedAt;
    expect(
      events.of(session.id).some(({ event }) => event.type === "error" && event.name === "MessageAbortedError"),
    ).toBe(true);
  }, 90_000);
});
