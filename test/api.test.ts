import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LIMITS,
  SessionConfig,
  SessionLogWriter,
  mintCallbackToken,
  newApiKey,
  type Session,
} from "../shared/src/index.js";
import { LocalSandboxProvider } from "../shared/src/sandbox/local/index.js";
import { useApi } from "./support/api-fixture.js";
import { eventually, logger } from "./support/fixtures.js";

describe("api over a real bus and store", () => {
  const api = useApi({ prefix: "api", api: { submitsPerMinute: 1_000 } });
  const { store, bus, call } = api;

  it("answers a submit with 202 and the same session for a repeated Idempotency-Key", async () => {
    const first = await call<{ sessionId: string; status: string }>(
      "POST",
      "/v1/sessions",
      { projectId: "p1", prompt: "hi" },
      { "idempotency-key": "k-1" },
    );
    const again = await call<{ sessionId: string }>(
      "POST",
      "/v1/sessions",
      { projectId: "p1", prompt: "hi" },
      { "idempotency-key": "k-1" },
    );
    const other = await call<{ sessionId: string }>(
      "POST",
      "/v1/sessions",
      { projectId: "p1", prompt: "hi" },
      { "idempotency-key": "k-2" },
    );
    expect(first).toMatchObject({ status: 202, body: { status: "pending" } });
    expect(again.body.sessionId).toBe(first.body.sessionId);
    expect(other.body.sessionId).not.toBe(first.body.sessionId);
    const chosen = await call<{ sessionId: string }>("POST", "/v1/sessions", {
      projectId: "p1",
      prompt: "hi",
      sessionId: "my-own-id",
    });
    expect(chosen.body.sessionId).toBe("my-own-id");
    const stored = await call<Session>("GET", "/v1/sessions/my-own-id");
    expect(stored.body).toMatchObject({ id: "my-own-id", projectId: "p1", status: "pending", phase: "queued" });
  });

  it("answers 422 for a reused Idempotency-Key with a different request, and changes nothing", async () => {
    const body = { projectId: "p-idem", prompt: "first", model: "m1", tools: ["bash"] };
    const first = await call<{ sessionId: string }>("POST", "/v1/sessions", body, { "idempotency-key": "k-422" });
    expect(first.status).toBe(202);
    const changes: Array<[Record<string, unknown>, string]> = [
      [{ prompt: "second" }, "prompt"],
      [{ model: "m2" }, "model"],
      [{ tools: ["bash", "write"] }, "tools"],
      [{ timeoutMs: 60_000 }, "timeoutMs"],
      [{ cardId: "card-x" }, "cardId"],
      [{ systemPrompt: "be brief" }, "systemPrompt"],
    ];
    for (const [change, field] of changes) {
      const r = await call<{ error: { code: string; message: string } }>(
        "POST",
        "/v1/sessions",
        { ...body, ...change },
        { "idempotency-key": "k-422" },
      );
      expect(r.status, field).toBe(422);
      expect(r.body).toEqual({ error: { code: "idempotency_key_reused", message: expect.stringContaining(field) } });
    }
    // The same request again still answers the first session; a new key makes a new one.
    const again = await call<{ sessionId: string }>(
      "POST",
      "/v1/sessions",
      { tools: ["bash"], model: "m1", prompt: "first", projectId: "p-idem" },
      { "idempotency-key": "k-422" },
    );
    expect(again).toMatchObject({ status: 202, body: { sessionId: first.body.sessionId } });
    expect(
      (await call("POST", "/v1/sessions", { ...body, prompt: "second" }, { "idempotency-key": "k-423" })).status,
    ).toBe(202);
    expect((await store.get(first.body.sessionId))?.prompt).toBe("first");
    expect((await store.listByProject("p-idem", { limit: 10 })).items).toHaveLength(2);
    const spec = await call<{ paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>(
      "GET",
      "/openapi.json",
    );
    expect(Object.keys(spec.body.paths["/v1/sessions"]?.post?.responses ?? {})).toContain("422");
  });

  it("rejects bad input with 400 and the zod issues, storing nothing", async () => {
    const cases: Array<[unknown, string]> = [
      ["{not json", "bad_request"],
      [{ prompt: "x" }, "bad_input"],
      [{ projectId: "p1", prompt: "" }, "bad_input"],
      [{ projectId: "p1", prompt: "x", extra: true }, "bad_input"],
      [{ projectId: "p1", prompt: "x", files: [{ path: "../etc/passwd", content: "" }] }, "bad_input"],
      [{ projectId: "p1", prompt: "x", files: [{ path: "/abs", content: "" }] }, "bad_input"],
      [{ projectId: "p1", prompt: "x", sessionId: "has.dot" }, "bad_input"],
      [{ projectId: "p1", prompt: "x", timeoutMs: 5 }, "bad_input"],
    ];
    for (const [body, code] of cases) {
      const r = await call<{ error: { code: string; message: string; issues?: unknown[] } }>(
        "POST",
        "/v1/sessions",
        body,
      );
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe(code);
      if (code === "bad_input") expect(r.body.error.issues?.length).toBeGreaterThan(0);
    }
    expect((await store.listByProject("p1", { limit: 100 })).items.map((s) => s.id).sort()).toHaveLength(3);
    expect((await call("GET", "/v1/sessions/nope")).status).toBe(404);
    expect((await call("GET", "/v1/sessions?projectId=")).status).toBe(400);
    expect((await call("GET", "/v1/nowhere")).status).toBe(404);
  });

  it("lists a project's sessions page by page", async () => {
    for (let i = 0; i < 5; i++)
      await call("POST", "/v1/sessions", { projectId: "paged", prompt: `p${i}`, sessionId: `pg-${i}` });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page: { body: { items: Session[]; nextCursor?: string } } = await call(
        "GET",
        `/v1/sessions?projectId=paged&limit=2${cursor ? `&cursor=${cursor}` : ""}`,
      );
      seen.push(...page.body.items.map((s) => s.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(["pg-0", "pg-1", "pg-2", "pg-3", "pg-4"]);
  });

  it("serves a card's active session with its latest lines", async () => {
    await call("POST", "/v1/sessions", { projectId: "p1", prompt: "x", sessionId: "card-s", cardId: "card-9" });
    const writer = await SessionLogWriter.open({ store, bus, logger }, "card-s");
    await writer.append([
      { kind: "system", line: "one" },
      { kind: "system", line: "two" },
    ]);
    const r = await call<{ session: Session; logs: Array<{ line: string }> }>("GET", "/v1/cards/card-9/active-session");
    expect(r.body.session.id).toBe("card-s");
    expect(r.body.logs.map((l) => l.line)).toEqual(["one", "two"]);
    expect((await call("GET", "/v1/cards/card-none/active-session")).status).toBe(404);
  });

  it("streams log lines as server-sent events, resumes after Last-Event-ID and ends with the session", async () => {
    await call("POST", "/v1/sessions", { projectId: "p1", prompt: "x", sessionId: "sse-1" });
    const writer = await SessionLogWriter.open({ store, bus, logger }, "sse-1");
    await writer.append([1, 2, 3].map((i) => ({ kind: "system" as const, line: `line ${i}` })));
    const res = await fetch(`${api.base}/v1/sessions/sse-1/logs`, {
      headers: { authorization: `Bearer ${api.key}`, accept: "text/event-stream", "last-event-id": "1" },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const text = (async () => {
      let all = "";
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) all += Buffer.from(chunk).toString();
      return all;
    })();
    await new Promise((r) => setTimeout(r, 300));
    await writer.append([{ kind: "tool", line: "line 4 (live)" }]);
    await new Promise((r) => setTimeout(r, 300));
    await store.transition("sse-1", {
      from: ["pending"],
      to: "completed",
      set: { output: { response: "", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] } },
    });
    const body = await text;
    const ids = [...body.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual([2, 3, 4]);
    expect(body).toContain('"line":"line 4 (live)"');
    expect(body).toMatch(/event: end\ndata: \{"status":"completed","lastSeq":4\}/);
    const json = await call<{ lines: Array<{ seq: number }> }>("GET", "/v1/sessions/sse-1/logs?afterSeq=2");
    expect(json.body.lines.map((l) => l.seq)).toEqual([3, 4]);
  });

  it("publishes a cancel request for an active session and refuses one for an ended session", async () => {
    await call("POST", "/v1/sessions", { projectId: "p1", prompt: "x", sessionId: "to-cancel" });
    const seen: string[] = [];
    const sub = bus.consume("watchdog", { handler: async (m) => void seen.push(m.sessionId) });
    const r = await call("POST", "/v1/sessions/to-cancel/cancel", { reason: "user asked" });
    expect(r.status).toBe(202);
    await eventually(() => seen.includes("to-cancel"));
    await sub.stop();
    expect((await call("POST", "/v1/sessions/sse-1/cancel", {})).status).toBe(409);
    expect((await call("POST", "/v1/sessions/none/cancel", {})).status).toBe(404);
  });

  it("takes a cancel with no body at all, as `curl -X POST` sends it, and documents the body as optional", async () => {
    for (const [id, init] of [
      ["bare-cancel", {}],
      ["empty-json-cancel", { headers: { "content-type": "application/json" }, body: "" }],
    ] as const) {
      await call("POST", "/v1/sessions", { projectId: "p1", prompt: "x", sessionId: id });
      const res = await fetch(`${api.base}/v1/sessions/${id}/cancel`, {
        method: "POST",
        ...init,
        headers: { authorization: `Bearer ${api.key}`, ...("headers" in init ? init.headers : {}) },
      });
      expect({ id, status: res.status, body: await res.json() }).toEqual({
        id,
        status: 202,
        body: { sessionId: id, status: "pending" },
      });
    }
    // A body that is there must still be right, and JSON null is not "no body".
    expect((await call("POST", "/v1/sessions/bare-cancel/cancel", { reason: 5 })).status).toBe(400);
    expect((await call("POST", "/v1/sessions/bare-cancel/cancel", "null")).status).toBe(400);
    const spec = await call<{ paths: Record<string, { post: { requestBody?: { required?: boolean } } }> }>(
      "GET",
      "/openapi.json",
    );
    expect(spec.body.paths["/v1/sessions/{id}/cancel"]?.post.requestBody?.required).not.toBe(true);
  });

  it("reports readiness, metrics and its OpenAPI document", async () => {
    expect(await call("GET", "/readyz")).toMatchObject({ status: 200, body: { ok: true, bus: true, store: true } });
    expect((await call("GET", "/healthz")).status).toBe(200);
    const metrics = await fetch(`${api.base}/metrics`).then((r) => r.text());
    expect(metrics).toContain("fleet_setup_step_seconds");
    const spec = await call<{ openapi: string; paths: Record<string, unknown> }>("GET", "/openapi.json");
    expect(spec.body.openapi).toBe("3.1.0");
    expect(Object.keys(spec.body.paths)).toEqual(
      expect.arrayContaining([
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/details",
        "/v1/sessions/{id}/metrics",
        "/v1/sessions/{id}/logs",
        "/v1/cards/{cardId}/active-session",
        "/v1/sessions/{id}/cancel",
      ]),
    );
  });

  it("declares keys, every error status and the event stream in its OpenAPI document", async () => {
    type Op = { security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> };
    const spec = (
      await call<{
        components: { securitySchemes: Record<string, unknown> };
        paths: Record<string, Record<string, Op>>;
      }>("GET", "/openapi.json")
    ).body;
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(["bearerKey", "headerKey"]);
    for (const [path, ops] of Object.entries(spec.paths)) {
      if (!path.startsWith("/v1/") || path.startsWith("/v1/callbacks/")) continue;
      for (const [method, op] of Object.entries(ops)) {
        expect(op.security, `${method} ${path}`).toEqual([{ bearerKey: [] }, { headerKey: [] }]);
        expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(["400", "401", "503"]));
      }
    }
    expect(Object.keys(spec.paths["/v1/sessions/{id}/logs"]?.get?.responses["200"]?.content ?? {})).toEqual([
      "application/json",
      "text/event-stream",
    ]);
  });

  it("answers 405 with Allow for a method a known path does not have, and 404 for an unknown path", async () => {
    const session = await fetch(`${api.base}/v1/sessions/my-own-id`, { method: "DELETE", headers: api.auth });
    expect(session.status).toBe(405);
    expect(session.headers.get("allow")).toBe("GET, HEAD");
    expect(((await session.json()) as { error: { code: string } }).error.code).toBe("method_not_allowed");
    // QUERY carries a body; without this it would be refused for its missing content type instead.
    const list = await fetch(`${api.base}/v1/sessions`, { method: "QUERY", headers: api.auth });
    expect(list.status).toBe(405);
    expect(list.headers.get("allow")).toBe("GET, HEAD, POST");
    expect((await fetch(`${api.base}/healthz`, { method: "PUT" })).status).toBe(405);
    expect((await fetch(`${api.base}/v1/nowhere`, { method: "DELETE", headers: api.auth })).status).toBe(404);
  });

  it("opens a log stream at once, before the session has any line", async () => {
    await call("POST", "/v1/sessions", { projectId: "p1", prompt: "x", sessionId: "sse-quiet" });
    const aborted = new AbortController();
    const started = Date.now();
    const res = await fetch(`${api.base}/v1/sessions/sse-quiet/logs?follow=1`, {
      headers: api.auth,
      signal: aborted.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(Date.now() - started).toBeLessThan(5_000);
    aborted.abort();
  });

  it("asks every /v1 route for a key, and a key reaches only its own projects", async () => {
    const bare = async (path: string, headers: Record<string, string> = {}, method = "GET", body?: unknown) => {
      const r = await fetch(`${api.base}${path}`, {
        method,
        headers: { ...headers, ...(body ? { "content-type": "application/json" } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: r.status, body: (await r.json()) as { error?: { code: string } } };
    };
    expect((await bare("/v1/sessions/my-own-id")).status).toBe(401);
    expect(
      (await bare("/v1/sessions/my-own-id", { authorization: `Bearer fk_0000000000000000_${"x".repeat(43)}` })).status,
    ).toBe(401);
    expect((await bare("/v1/sessions/my-own-id", { authorization: `Bearer ${api.key}x` })).status).toBe(401);
    expect((await bare("/healthz")).status).toBe(200);
    const other = newApiKey(["other-project"], "other");
    await store.saveApiKey(other.record);
    const as = { authorization: `Bearer ${other.key}` };
    // p1's session is invisible to a key for another project: the same 404 as a missing one.
    expect(await bare("/v1/sessions/my-own-id", as)).toEqual({
      status: 404,
      body: { error: { code: "not_found", message: "no session my-own-id" } },
    });
    expect((await bare("/v1/sessions/my-own-id/logs", as)).status).toBe(404);
    expect((await bare("/v1/sessions/my-own-id/details", as)).status).toBe(404);
    expect((await bare("/v1/sessions/my-own-id/cancel", as, "POST", {})).status).toBe(404);
    expect((await bare("/v1/cards/card-9/active-session", as)).status).toBe(404);
    expect((await bare("/v1/sessions?projectId=p1", as)).status).toBe(403);
    expect((await bare("/v1/sessions", as, "POST", { projectId: "p1", prompt: "x" })).status).toBe(403);
    expect(
      (await bare("/v1/sessions", as, "POST", { projectId: "other-project", prompt: "x", sessionId: "mine" })).status,
    ).toBe(202);
    expect((await bare("/v1/sessions/mine", { "x-api-key": other.key })).status).toBe(200);
    // A revoked key stops working (after the short cache).
    await store.revokeApiKey(other.record.id);
    await eventually(async () => (await bare("/v1/sessions/mine", as)).status === 401, 10_000, 250);
  });

  it("limits submits per key with 429 and Retry-After", async () => {
    const { app: limited, url } = await api.listen({ submitsPerMinute: 2 });
    try {
      const post = () =>
        fetch(`${url}/v1/sessions`, {
          method: "POST",
          headers: { authorization: `Bearer ${api.key}`, "content-type": "application/json" },
          body: JSON.stringify({ projectId: "p1", prompt: "x" }),
        });
      expect((await post()).status).toBe(202);
      expect((await post()).status).toBe(202);
      const third = await post();
      expect(third.status).toBe(429);
      expect(Number(third.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(((await third.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
      // Reads are not limited.
      const read = await fetch(`${url}/v1/sessions?projectId=p1`, { headers: api.auth });
      expect(read.status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it("lets a sandbox complete its own running session with its callback token, and nothing else", async () => {
    const tokens = { keys: [{ kid: "k1", secret: "s".repeat(40) }] };
    const dir = mkdtempSync(join(tmpdir(), "fleet-cb-"));
    const { app: withCallbacks, url } = await api.listen({
      callbacks: { tokens, provider: new LocalSandboxProvider({ rootDir: dir }, logger) },
    });
    try {
      await store.create({ id: "cb-1", projectId: "p1", prompt: "x", config: SessionConfig.parse({}) });
      await store.patch("cb-1", { attempt: 1 });
      await store.transition("cb-1", { from: ["pending"], to: "running", set: { startedAt: Date.now() } });
      const complete = (token: string | undefined, body: unknown = { response: "done from inside" }) =>
        fetch(`${url}/v1/callbacks/sessions/cb-1/complete`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
        }).then(async (r) => ({
          status: r.status,
          body: (await r.json()) as { status?: string; error?: { code: string } },
        }));
      const push = (token: string | undefined, body: unknown = { lines: [{ line: "hello" }] }) =>
        fetch(`${url}/v1/callbacks/sessions/cb-1/events`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(body),
        });
      expect((await push(undefined)).status).toBe(401);
      expect((await push(await mintCallbackToken(tokens, "cb-other", 1))).status).toBe(401);
      expect((await push(await mintCallbackToken(tokens, "cb-1", 1), { lines: [] })).status).toBe(400);
      expect(
        (
          await push(await mintCallbackToken(tokens, "cb-1", 1), {
            lines: [{ line: "x".repeat(LIMITS.logLineChars + 1) }],
          })
        ).status,
      ).toBe(400);
      // No poller watches cb-1: the caller is told to come back, and nothing is stored.
      const unwatched = await push(await mintCallbackToken(tokens, "cb-1", 1));
      expect(unwatched.status).toBe(503);
      expect(unwatched.headers.get("retry-after")).toBe("1");
      expect(await store.lastLogSeq("cb-1")).toBe(0);
      expect(await bus.lastLogSeq("cb-1")).toBe(0);
      expect((await complete(undefined)).status).toBe(401);
      expect((await complete(api.key)).status).toBe(401);
      expect(
        (await complete(await mintCallbackToken({ keys: [{ kid: "k1", secret: "t".repeat(40) }] }, "cb-1", 1))).status,
      ).toBe(401);
      expect((await complete(await mintCallbackToken(tokens, "cb-other", 1))).status).toBe(401);
      expect((await complete(await mintCallbackToken(tokens, "cb-1", 2))).status).toBe(409);
      const good = await mintCallbackToken(tokens, "cb-1", 1);
      expect((await complete(good, { response: "x", extra: 1 })).status).toBe(400);
      expect((await store.get("cb-1"))?.status).toBe("running");
      expect(await complete(good)).toEqual({ status: 200, body: { sessionId: "cb-1", status: "completed" } });
      expect((await store.get("cb-1"))?.output?.response).toBe("done from inside");
      // The same compare-and-set as the poller's: a second completion changes nothing.
      expect((await complete(good, { response: "again" })).status).toBe(409);
      expect((await store.get("cb-1"))?.output?.response).toBe("done from inside");
    } finally {
      await withCallbacks.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a request too big for one bus message, storing nothing", async () => {
    const files = Array.from({ length: 3 }, (_, i) => ({ path: `big-${i}.txt`, content: "x".repeat(400_000) }));
    const r = await call<{ error: { code: string; message: string } }>("POST", "/v1/sessions", {
      projectId: "p1",
      prompt: "x",
      sessionId: "too-big",
      files,
    });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/one request may carry at most 900000/);
    expect(await store.get("too-big")).toBeNull();
  });

  it("caps the lines one session may write, ending with a marker", async () => {
    const writer = await SessionLogWriter.open({ store, bus, logger }, "flood");
    await writer.append(
      Array.from({ length: LIMITS.logLinesPerSession + 10 }, (_, i) => ({ kind: "tool" as const, line: `l${i}` })),
    );
    await writer.append([{ kind: "tool", line: "one more" }]);
    // Lines live in the stream first (no archiver runs here): the cap holds there.
    expect(await bus.lastLogSeq("flood")).toBe(LIMITS.logLinesPerSession);
    const last = await bus.readLogs("flood", { afterSeq: LIMITS.logLinesPerSession - 2 });
    expect(last.map((l) => l.line)).toEqual([
      `l${LIMITS.logLinesPerSession - 2}`,
      `[log truncated: more than ${LIMITS.logLinesPerSession} lines; the rest is not kept]`,
    ]);
  }, 60_000);
});
