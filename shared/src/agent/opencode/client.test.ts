import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { createLogger } from "../../log/index.js";
import type { AgentEvent } from "../port.js";
import { OpencodeAgentClient } from "./client.js";

/**
 * Error mapping and request shapes against a stand-in HTTP server; the real server's behaviour is
 * covered by test/agent-opencode.test.ts.
 */
const logger = createLogger({ name: "test", level: "silent" });
const servers: Server[] = [];

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function serve(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => handler(req, res, body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const client = (baseUrl: string, timeoutMs = 2_000, eventIdleMs = 2_000): OpencodeAgentClient =>
  new OpencodeAgentClient({ baseUrl, password: "pw" }, logger, { requestTimeoutMs: timeoutMs, eventIdleMs });

describe("OpenCode client errors", () => {
  it("maps 401 to a non-retryable refusal, for requests, health and events", async () => {
    const url = await serve((_req, res) => json(res, 401, { name: "UnauthorizedError" }));
    const c = client(url);
    await expect(c.status()).rejects.toMatchObject({
      code: "agent",
      retryable: false,
      message: "agent server refused the password",
    });
    await expect(c.health(1_000)).rejects.toBeInstanceOf(FleetError);
    await expect(c.events(AbortSignal.timeout(5_000))[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      retryable: false,
    });
  });

  it("maps a silent server to a retryable timeout and an unhealthy probe", async () => {
    const url = await serve(() => undefined);
    const c = client(url, 200);
    const err = await c.messages("ses_1").catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "agent",
      retryable: true,
      message: "messages: agent server did not answer within 200 ms",
    });
    expect(await c.health(200)).toBe(false);
  });

  it("maps a closed port to a retryable 'unreachable'", async () => {
    const url = await serve(() => undefined);
    const dead = servers.pop() as Server;
    await new Promise((r) => dead.close(r));
    const c = client(url);
    await expect(c.todos("ses_1")).rejects.toMatchObject({
      retryable: true,
      message: expect.stringContaining("unreachable"),
    });
    expect(await c.health(500)).toBe(false);
    await expect(c.events(AbortSignal.timeout(5_000))[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      retryable: true,
    });
  });

  it("maps HTTP errors by status and keeps OpenCode's message", async () => {
    const url = await serve((req, res) =>
      req.url?.startsWith("/session/missing")
        ? json(res, 404, { name: "NotFoundError", data: { message: "Session not found" } })
        : json(res, 503, "overloaded"),
    );
    const c = client(url);
    await expect(c.messages("missing")).rejects.toMatchObject({
      code: "not_found",
      retryable: false,
      message: "messages: agent server answered HTTP 404: NotFoundError: Session not found",
    });
    await expect(c.status()).rejects.toMatchObject({
      code: "agent",
      retryable: true,
      message: expect.stringContaining("HTTP 503"),
    });
  });

  it("refuses answers of the wrong shape", async () => {
    const url = await serve((_req, res) => json(res, 200, { ses_1: "busy" }));
    await expect(client(url).status()).rejects.toMatchObject({
      code: "agent",
      retryable: false,
      message: "status: unexpected answer from the agent server",
    });
  });
});

describe("OpenCode client requests", () => {
  it("authenticates, prompts with its own message id on the server's clock, and maps answers", async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
    const serverAhead = 3_600_000;
    const url = await serve((req, res, body) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
      if (req.url === "/session" && req.method === "POST")
        return json(res, 200, { id: "ses_1", title: "t", time: { created: Date.now() + serverAhead, updated: 0 } });
      if (req.url?.startsWith("/session/ses_1/prompt_async")) return void res.writeHead(204).end();
      if (req.url === "/session/status")
        return json(res, 200, { ses_1: { type: "busy" }, ses_2: { type: "retry", attempt: 1 } });
      if (req.url?.startsWith("/session/ses_1/diff")) {
        return json(res, 200, [
          {
            file: "a.txt",
            patch: "--- a.txt\n+++ a.txt\n@@ -1,1 +1,1 @@\n-old\n+new\n",
            additions: 1,
            deletions: 1,
            status: "modified",
          },
          { file: "img.png", patch: "", additions: 0, deletions: 0, status: "added" },
          { patch: "" },
        ]);
      }
      if (req.url?.startsWith("/session/ses_1/abort")) return json(res, 200, true);
      json(res, 404, {});
    });
    const c = client(url);
    expect(await c.createSession("t")).toEqual({ id: "ses_1" });
    const before = BigInt(Date.now() + serverAhead / 2) * 4096n;
    const { messageId } = await c.prompt("ses_1", { text: "hello", model: "m1", system: "be brief" });
    expect(BigInt(`0x${messageId.slice(4, 16)}`)).toBeGreaterThan(before & 0xffffffffffffn);
    const prompt = seen.find((s) => s.url?.includes("prompt_async"));
    expect(prompt?.auth).toBe(`Basic ${Buffer.from("opencode:pw").toString("base64")}`);
    expect(JSON.parse(prompt?.body ?? "")).toEqual({
      messageID: messageId,
      model: { providerID: "fleet", modelID: "m1" },
      system: "be brief",
      parts: [{ type: "text", text: "hello" }],
    });
    expect(await c.status()).toEqual({ ses_1: "busy", ses_2: "retry" });
    expect(await c.diff("ses_1", messageId)).toEqual([
      { file: "a.txt", before: "old\n", after: "new\n", additions: 1, deletions: 1 },
      { file: "img.png", additions: 0, deletions: 0 },
    ]);
    expect(seen.find((s) => s.url?.includes("/diff"))?.url).toBe(`/session/ses_1/diff?messageID=${messageId}`);
    await c.abort("ses_1");
    expect(seen.at(-1)).toMatchObject({ method: "POST", url: "/session/ses_1/abort" });
  });
});

describe("OpenCode event stream", () => {
  it("maps events, ends quietly on abort, and ends retryably when the server goes silent", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const e of [
        { type: "server.connected", properties: {} },
        { type: "message.part.delta", properties: { delta: "x" } },
        { type: "session.status", properties: { sessionID: "ses_1", status: { type: "busy" } } },
      ]) {
        res.write(`data: ${JSON.stringify(e)}\n\n`);
      }
    });
    const got: AgentEvent[] = [];
    const ac = new AbortController();
    for await (const e of client(url).events(ac.signal)) {
      got.push(e);
      if (got.length === 2) ac.abort();
    }
    expect(got).toEqual([{ type: "heartbeat" }, { type: "status", sessionId: "ses_1", status: "busy" }]);

    const silent: AgentEvent[] = [];
    const err = await (async () => {
      for await (const e of client(url, 2_000, 300).events(new AbortController().signal)) silent.push(e);
    })().catch((e: unknown) => e);
    expect(silent).toHaveLength(2);
    expect(err).toMatchObject({ code: "agent", retryable: true, message: expect.stringContaining("silent") });
  });
});
