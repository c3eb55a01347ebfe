import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SCHEMA_VERSION, SessionLog, logLines, subjectFor, type LogLine, type Session } from "../shared/src/index.js";
import { DEMO_FILE, DEMO_TODOS, SCENARIOS } from "../devtools/src/model/index.js";
import { eventually } from "./support/fixtures.js";
import { SANDBOX_KINDS, useTestFleet } from "./support/fleet-fixture.js";
import { api, readSse } from "./support/fleet.js";

/** Card scenarios: the first writes notes and then thinks for a long time; the second reads them. */
const NOTES = "notes from the first session\n";
/**
 * The agent pushes a progress line (twice, as a retry would) and then completes its own session
 * through the callback routes, with the token its sandbox got. 503 means no poller watches yet.
 */
const CALLBACK_SCRIPT = [
  "const h = { authorization: 'Bearer ' + process.env.FLEET_CALLBACK_TOKEN, 'content-type': 'application/json' };",
  "const post = async (p, b) => { for (let i = 0; i < 40; i++) { const r = await fetch(process.env.FLEET_CALLBACK_URL + p, { method: 'POST', headers: h, body: JSON.stringify(b) }); if (r.status !== 503) return r.status; await new Promise((f) => setTimeout(f, 250)); } return 503; };",
  "const ev = { lines: [{ kind: 'text', line: 'pushed from the sandbox', key: 'p1' }] };",
  "(async () => console.log('callback', await post('/events', ev), await post('/events', ev), await post('/complete', { response: 'completed by callback' })))();",
].join(" ");
/** A host folder the agent links into its workspace, to try to escape through the card's next session. */
const OUTSIDE = mkdtempSync(join(tmpdir(), "fleet-outside-"));
const HOST_SECRET = "host secret that must stay on the host";
writeFileSync(join(OUTSIDE, "secret.txt"), HOST_SECRET);
const cardScenarios = {
  "card-symlink": {
    name: "card-symlink",
    turns: [
      {
        type: "tools" as const,
        calls: [
          { name: "bash", arguments: { command: `ln -s ${OUTSIDE} escape && ln -s ${OUTSIDE}/secret.txt leak.txt` } },
        ],
      },
      { type: "text" as const, text: "Linked." },
    ],
  },
  callback: {
    name: "callback",
    turns: [
      { type: "tools" as const, calls: [{ name: "bash", arguments: { command: `node -e "${CALLBACK_SCRIPT}"` } }] },
      { type: "text" as const, text: "Waiting.", delayMs: 30_000 },
    ],
  },
  "card-first": {
    name: "card-first",
    turns: [
      { type: "tools" as const, calls: [{ name: "write", arguments: { filePath: "notes.txt", content: NOTES } }] },
      { type: "text" as const, text: "Still thinking…", delayMs: 60_000 },
    ],
  },
  "card-second": {
    name: "card-second",
    turns: [
      { type: "tools" as const, calls: [{ name: "bash", arguments: { command: "cat notes.txt" } }] },
      { type: "text" as const, text: "Read the notes." },
    ],
  },
};

describe.each(SANDBOX_KINDS)("sessions end to end on %s sandboxes: services as processes, real OpenCode", (kind) => {
  // On the local E2B (SANDBOX_PROVIDER=e2b) only whole sessions and the callbacks run, to keep the
  // suite's time down: the rest exercises the fleet, not its sandbox provider.
  const localOnly = kind === "local" ? it : undefined;
  const fleet = useTestFleet({
    prefix: kind === "local" ? "e2e" : `e2e${kind}`,
    sandboxes: kind,
    model: { scenario: "demo", byModel: { ...SCENARIOS, ...cardScenarios } },
    env: { SPAWNER_MAX_IN_FLIGHT: "1", POLLER_STATUS_INTERVAL_MS: "500" },
    services: [["api"], ["spawner"], ["spawner"], ["poller"], ["poller"]],
    store: true,
    nats: true,
    submitDefaults: { projectId: "p-e2e" },
  });
  const ns = fleet.namespace;

  it("runs a session submitted over HTTP and one published raw on the bus, with their tools really run", async () => {
    const rawId = `raw-${ns}`;
    // A plain subscriber, as another system would follow a session.
    const plain: LogLine[] = [];
    const sub = fleet.nc.subscribe(subjectFor(ns, "log", rawId), {
      callback: (_e, m) => void plain.push(...logLines(SessionLog.parse(m.json()))),
    });

    const posted = await api<{ sessionId: string; status: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-e2e",
      prompt: "write a greeting",
      model: "demo",
    });
    expect(posted.status).toBe(202);
    const httpId = posted.body.sessionId;
    const js = (await import("@nats-io/jetstream")).jetstream(fleet.nc);
    await js.publish(
      subjectFor(ns, "requested"),
      JSON.stringify({
        v: SCHEMA_VERSION,
        sessionId: rawId,
        projectId: "p-e2e",
        prompt: "write a greeting",
        config: { model: "demo" },
        requestedAt: Date.now(),
      }),
      { msgID: `requested:${rawId}` },
    );

    // The file exists in the sandbox while the session still runs.
    let seenInSandbox: string | undefined;
    const sse = await readSse(fleet, httpId, (l) => {
      if (l.line.startsWith("✓ Write") && seenInSandbox === undefined) {
        const s =
          readFileSync(join(fleet.dir, "poller-0.log"), "utf8") + readFileSync(join(fleet.dir, "poller-1.log"), "utf8");
        const sandboxId = new RegExp(`"sessionId":"${httpId}","sandboxId":"([^"]+)"`).exec(s)?.[1];
        const file = sandboxId ? join(fleet.workspaceOf(sandboxId), DEMO_FILE.path) : "";
        seenInSandbox = existsSync(file) ? readFileSync(file, "utf8") : "";
      }
    });
    expect(sse.end.status).toBe("completed");
    expect(seenInSandbox).toBe(DEMO_FILE.content);
    const seqs = sse.lines.map((l) => l.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(sse.lines.some((l) => l.line === "✓ Bash cat hello.txt")).toBe(true);

    const details = await api<{
      session: Session;
      logs: Array<{ seq: number }>;
      response: string;
      diffs: Array<{ file: string; after?: string }>;
      todos: unknown[];
    }>(fleet, "GET", `/v1/sessions/${httpId}/details`);
    expect(details.body.response).toContain("Done.");
    expect(details.body.diffs.find((d) => d.file === DEMO_FILE.path)?.after).toBe(DEMO_FILE.content);
    expect(details.body.todos).toHaveLength(DEMO_TODOS.length);
    expect(details.body.logs.map((l) => l.seq)).toEqual(seqs);
    const metrics = await api<{
      steps: Array<{ step: string }>;
      executionMs: number;
      setupMs: number;
      counts: { toolCalls: number };
      usage: { tokensIn: number };
    }>(fleet, "GET", `/v1/sessions/${httpId}/metrics`);
    expect(metrics.body.steps.map((s) => s.step)).toEqual(
      expect.arrayContaining(["sandboxCreate", "restore", "serverStart", "sessionCreate", "promptSend", "execution"]),
    );
    expect(metrics.body.executionMs).toBeGreaterThan(0);
    expect(metrics.body.counts.toolCalls).toBe(3);
    expect(metrics.body.usage.tokensIn).toBeGreaterThan(0);
    await fleet.noSandbox(httpId);

    const raw = await eventually(async () => {
      const r = await api<Session>(fleet, "GET", `/v1/sessions/${rawId}`);
      return r.body.status === "completed" ? r.body : undefined;
    }, 90_000);
    expect(raw.output?.diffs.find((d) => d.file === DEMO_FILE.path)?.after).toBe(DEMO_FILE.content);
    const stored = await api<{ lines: Array<{ seq: number; line: string }> }>(
      fleet,
      "GET",
      `/v1/sessions/${rawId}/logs`,
    );
    await eventually(() => plain.length === stored.body.lines.length);
    expect(plain).toEqual(stored.body.lines.map((l) => expect.objectContaining({ seq: l.seq, line: l.line })));
    sub.unsubscribe();
    await fleet.noSandbox(rawId);
  }, 180_000);

  it("lets the agent push progress (kept once on retry) and complete its own session through signed callbacks", async () => {
    const { body } = await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-e2e",
      prompt: "call back",
      model: "callback",
    });
    const done = await eventually(async () => {
      const r = (await api<Session>(fleet, "GET", `/v1/sessions/${body.sessionId}`)).body;
      return ["completed", "failed", "cancelled"].includes(r.status) ? r : undefined;
    }, 90_000);
    expect(done.status).toBe("completed");
    expect(done.output?.response).toBe("completed by callback");
    const logs = await api<{ lines: Array<{ seq: number; line: string }> }>(
      fleet,
      "GET",
      `/v1/sessions/${body.sessionId}/logs`,
    );
    expect(logs.body.lines.filter((l) => l.line === "pushed from the sandbox")).toHaveLength(1);
    expect(logs.body.lines.map((l) => l.seq)).toEqual(logs.body.lines.map((_, i) => i + 1));
    await fleet.noSandbox(body.sessionId, 20_000);
  }, 120_000);

  localOnly?.(
    "starts one sandbox for a duplicated session.requested",
    async () => {
      const id = `dup-${ns}`;
      const js = (await import("@nats-io/jetstream")).jetstream(fleet.nc);
      const body = JSON.stringify({
        v: SCHEMA_VERSION,
        sessionId: id,
        projectId: "p-e2e",
        prompt: "answer",
        config: { model: "text-only" },
        requestedAt: Date.now(),
      });
      // Two ids, so the server's deduplication does not hide the second copy: the fleet must.
      await js.publish(subjectFor(ns, "requested"), body, { msgID: `a-${id}` });
      await js.publish(subjectFor(ns, "requested"), body, { msgID: `b-${id}` });
      const done = await eventually(async () => {
        const r = await api<Session>(fleet, "GET", `/v1/sessions/${id}`);
        return r.body.status === "completed" ? r.body : undefined;
      }, 90_000);
      expect(done.attempt).toBe(1);
      const logs = await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`);
      expect(logs.body.lines.filter((l) => l.line.startsWith("Sandbox "))).toHaveLength(1);
      await fleet.noSandbox(id);
    },
    120_000,
  );

  localOnly?.(
    "cancels a card's running session for its new one, which starts from the first one's files",
    async () => {
      const firstId = await fleet.submit({ cardId: "card-1", prompt: "take notes", model: "card-first" });
      await eventually(async () => {
        const l = await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${firstId}/logs`);
        return l.body.lines.some((x) => x.line.startsWith("✓ Write notes.txt"));
      }, 90_000);
      const secondId = await fleet.submit({ cardId: "card-1", prompt: "read notes", model: "card-second" });
      const done = await eventually(async () => {
        const r = await fleet.get(secondId);
        return r.status === "completed" || r.status === "failed" ? r : undefined;
      }, 90_000);
      expect(done.status).toBe("completed");
      expect(done.output?.toolCalls.find((t) => t.name === "bash")?.output).toContain(NOTES.trim());
      const firstDoc = await fleet.get(firstId);
      expect(firstDoc.status).toBe("cancelled");
      expect(firstDoc.error?.message).toContain(secondId);
      await fleet.noSandbox(firstId);
      await fleet.noSandbox(secondId);
    },
    180_000,
  );

  localOnly?.(
    "lets no symlink a session left carry files out of the workspace or host files into the card",
    async () => {
      const { ended } = fleet;
      const linked = await ended(await fleet.submit({ cardId: "card-link", prompt: "link", model: "card-symlink" }));
      expect(linked.status).toBe("completed");
      expect(linked.output?.toolCalls.find((t) => t.name === "bash")?.status).toBe("completed");
      const secondId = await fleet.submit({
        cardId: "card-link",
        prompt: "answer",
        model: "text-only",
        files: [
          { path: "escape/pwned.txt", content: "written through a link" },
          { path: "leak.txt", content: "overwrite" },
        ],
      });
      const done = await ended(secondId);
      // Either the files land inside the new workspace or the session fails saying why; never outside.
      console.log(
        `symlink escape attempt: second session ${done.status}${done.error ? ` (${done.error.message})` : ""}`,
      );
      if (done.status !== "completed")
        expect(done.error?.message).toMatch(/escape|leak|symlink|outside|exists|directory/i);
      expect(readdirSync(OUTSIDE)).toEqual(["secret.txt"]);
      expect(readFileSync(join(OUTSIDE, "secret.txt"), "utf8")).toBe(HOST_SECRET);
      const saved = await fleet.store.cardFiles("card-link");
      expect(saved.map((f) => f.content).join("\n")).not.toContain(HOST_SECRET);
      await fleet.noSandbox(secondId);
    },
    180_000,
  );

  localOnly?.(
    "shares the work between two spawners and two pollers, no session handled twice",
    async () => {
      const ids = await Promise.all(
        [1, 2].map(
          async (i) =>
            (
              await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
                projectId: "p-share",
                prompt: `answer ${i}`,
                model: "text-only",
              })
            ).body.sessionId,
        ),
      );
      for (const id of ids) {
        await eventually(
          async () => (await api<Session>(fleet, "GET", `/v1/sessions/${id}`)).body.status === "completed",
          120_000,
        );
      }
      // Every session of this file: claimed by exactly one spawner attempt, watched by exactly one poller.
      const all = (await fleet.store.listByProject("p-e2e", { limit: 50 })).items.concat(
        (await fleet.store.listByProject("p-share", { limit: 50 })).items,
      );
      const pollerLogs = fleet.logsOf("poller");
      const hasLine = (log: string, id: string, msg: string) =>
        log.split("\n").some((l) => l.includes(`"sessionId":"${id}"`) && l.includes(msg));
      const watchers = (id: string) => pollerLogs.filter((log) => hasLine(log, id, "watching session"));
      for (const x of all.filter((x) => x.status === "completed")) {
        expect(x.attempt, x.id).toBe(1);
        expect(watchers(x.id), x.id).toHaveLength(1);
      }
      const spawnerLogs = fleet.logsOf("spawner");
      const setUpBy = (id: string) => spawnerLogs.filter((log) => hasLine(log, id, "setting up session"));
      for (const x of all.filter((x) => x.status === "completed")) expect(setUpBy(x.id), x.id).toHaveLength(1);
      // Both instances of each stage took part.
      expect(spawnerLogs.every((log) => log.includes("setting up session"))).toBe(true);
      expect(pollerLogs.every((log) => log.includes("watching session"))).toBe(true);
    },
    240_000,
  );
});

describe("an agent server that never becomes healthy", () => {
  // A stand-in binary that runs but never serves: the spawner must give up, not wait for the deadline.
  const dir = mkdtempSync(join(tmpdir(), "fleet-hang-"));
  // The sandbox's own user must reach it: it runs in the sandbox like the real agent.
  chmodSync(dir, 0o755);
  const bin = join(dir, "opencode");
  writeFileSync(bin, "#!/bin/sh\nexec sleep 300\n", { mode: 0o755 });
  const fleet = useTestFleet({
    prefix: "e2ehang",
    model: { scenario: "demo" },
    env: { OPENCODE_BIN: bin, FLEET_AGENT_READY_MS: "3000" },
    services: [["api"], ["spawner"], ["poller"]],
    teardown: () => rmSync(dir, { recursive: true, force: true }),
  });

  it("fails the session with a clear reason and removes its sandbox", async () => {
    const { body } = await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-hang",
      prompt: "hello",
    });
    const failed = await eventually(async () => {
      const r = await api<Session>(fleet, "GET", `/v1/sessions/${body.sessionId}`);
      return r.body.status === "failed" ? r.body : undefined;
    }, 60_000);
    expect(failed.error).toEqual({ code: "agent", message: "agent server did not become healthy within 3 s" });
    expect(failed.phase).toBe("server_starting");
    await fleet.noSandbox(body.sessionId);
  }, 90_000);
});
