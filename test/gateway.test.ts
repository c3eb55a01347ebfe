import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { freePort } from "../devtools/src/infra/index.js";
import { SCENARIOS, type ScenarioInput } from "../devtools/src/model/index.js";
import { CallbackKeys, mintGatewayToken, type Session } from "../shared/src/index.js";
import { eventually, present } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

/** The gateway's metrics are on a port of their own, which sandboxes are not given. */
const METRICS_PORT = await freePort();

/** The provider's key: only the gateway's environment has it. */
const MODEL_KEY = "sk-fleet-gw-test-7Hq2x9Lm4Pz8";

/**
 * Run by the agent inside its sandbox: looks for the key (by its prefix, given in two pieces so that
 * the probe itself does not hold it) in its environment, every file it can read outside the system
 * folders, and /proc/<pid>/environ and cmdline of every process it sees. Reports what it read, so
 * the haystack is shown to be real: the agent's own environ (with its password and its config,
 * whose apiKey is the gateway token) is among it.
 */
const KEY_PROBE = `
import json, os, sys
pre = ("sk-fleet" + "-gw-").encode()
out = {"found": [], "files": 0, "environs": 0, "agentEnviron": False, "tokenInConfig": False}
for k, v in os.environ.items():
    if pre in v.encode():
        out["found"].append("env:" + k)
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for part in ("environ", "cmdline"):
        try:
            d = open("/proc/%s/%s" % (pid, part), "rb").read()
        except OSError:
            continue
        out["environs"] += 1
        if b"OPENCODE_SERVER_PASSWORD" in d:
            out["agentEnviron"] = True
            out["tokenInConfig"] = out["tokenInConfig"] or b'"apiKey":"eyJ' in d
        if pre in d:
            out["found"].append("/proc/%s/%s" % (pid, part))
skip = {"/proc", "/sys", "/dev", "/usr"}
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip and d != "node_modules"]
    for f in files:
        p = os.path.join(root, f)
        try:
            if os.path.islink(p) or os.path.getsize(p) > 4_000_000:
                continue
            d = open(p, "rb").read()
        except OSError:
            continue
        out["files"] += 1
        if pre in d:
            out["found"].append(p)
print("KEYPROBE " + json.dumps(out))
`;

const probe: ScenarioInput = {
  name: "key-probe",
  turns: [
    {
      type: "tools",
      calls: [{ name: "bash", arguments: { command: "python3 keyprobe.py", description: "Look for the model key" } }],
    },
    { type: "text", text: "Looked." },
  ],
};

/** Stays running on its last turn, so that tokens can be tried against a live session. */
const lingering: ScenarioInput = {
  name: "lingering",
  turns: [{ type: "text", text: "Thinking for a long time…", delayMs: 60_000 }],
};

/** The demo, whose first turn the provider refuses with 429 on this model. */
const demo = present(SCENARIOS.demo, "the demo scenario");
const demoTurns = demo.turns;
const flaky: ScenarioInput = {
  ...demo,
  name: "flaky",
  turns: demoTurns.map((t, i) => (i === 0 ? { ...t, failure: { kind: "http_429" as const } } : t)),
};

describe("model gateway: agents reach the model only through it, with a session's token", () => {
  const fleet = useTestFleet({
    prefix: "gw",
    model: { scenario: "demo", byModel: { probe, lingering, flaky, steady: demo }, apiKey: MODEL_KEY },
    env: { POLLER_STATUS_INTERVAL_MS: "500", POLLER_STORE_CHECK_MS: "500" },
    services: [
      [
        "gateway",
        {
          FLEET_MODEL_API_KEY: MODEL_KEY,
          GATEWAY_SESSION_CACHE_MS: "200",
          GATEWAY_METRICS_PORT: String(METRICS_PORT),
          GATEWAY_PRICES: "*=1000/2000/100",
          GATEWAY_PROJECT_DAILY_TOKENS: "p-capped=1",
        },
      ],
      ["api"],
      ["spawner"],
      ["poller"],
      ["watchdog"],
    ],
    submitDefaults: { projectId: "p-gw" },
    timeoutMs: 180_000,
  });

  const logLines = async (id: string): Promise<string[]> =>
    (await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`)).body.lines.map(
      (l) => l.line,
    );
  const keys = () => ({ keys: CallbackKeys.parse(fleet.gatewayKeys) });
  const chat = (token: string, body: Record<string, unknown>) =>
    fetch(`${fleet.gatewayUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const hello = { model: "steady", messages: [{ role: "user", content: "hi" }], stream: true };

  it("runs a real OpenCode session through the gateway, whose sandbox holds no model key, and keeps its ledger", async () => {
    const id = await fleet.submit({
      prompt: "look around",
      model: "probe",
      files: [{ path: "keyprobe.py", content: KEY_PROBE }],
    });
    const done = await fleet.ended(id, 120_000);
    expect(done.status, JSON.stringify(done.error)).toBe("completed");
    const output = (done.output?.toolCalls ?? []).map((t) => t.output ?? "").join("\n");
    const report = JSON.parse(present(/KEYPROBE (\{.*\})/.exec(output), "the probe's report")[1] as string) as {
      found: string[];
      files: number;
      environs: number;
      agentEnviron: boolean;
      tokenInConfig: boolean;
    };
    expect(report.found).toEqual([]);
    // The haystack is real: workspace, home and /etc files, and the agent's own environment, whose
    // config names the gateway token as its key.
    expect(report.files).toBeGreaterThan(20);
    expect(report.agentEnviron).toBe(true);
    expect(report.tokenInConfig).toBe(true);

    // The ledger, as the session document and the project's usage show it.
    const usage = present(done.usage, "the session's ledger totals");
    expect(usage.calls).toBeGreaterThanOrEqual(2);
    expect(usage.tokensIn).toBeGreaterThan(0);
    expect(usage.tokensOut).toBeGreaterThan(0);
    expect(usage.cost).toBeCloseTo((usage.tokensIn * 1000 + usage.tokensOut * 2000) / 1e6, 6);
    const day = new Date().toISOString().slice(0, 10);
    const project = await api<{ total: { calls: number; tokensIn: number }; days: Array<{ day: string }> }>(
      fleet,
      "GET",
      `/v1/projects/p-gw/usage?from=${day}&to=${day}`,
    );
    expect(project.status).toBe(200);
    expect(project.body.total.calls).toBeGreaterThanOrEqual(usage.calls);
    expect(project.body.days.map((d) => d.day)).toEqual([day]);
    // Every streamed call asked the provider for usage, and reached it with the real key (it answers 401 otherwise).
    const streamed = fleet.model.seen().filter((r) => r.stream);
    expect(streamed.length).toBeGreaterThan(0);
    expect(streamed.every((r) => r.includeUsage)).toBe(true);
    // The same figures as Prometheus counters.
    const metrics = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
    expect(metrics).toMatch(/fleet_gateway_tokens_total\{[^}]*project="p-gw"[^}]*kind="in"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/fleet_gateway_ledger_writes_total\{[^}]*result="ok"[^}]*\} [1-9]/);
    // Not on the port agents reach: its counters name every project.
    expect((await fetch(fleet.gatewayUrl.replace(/\/v1$/, "/metrics"))).status).toBe(404);
  }, 150_000);

  it("refuses forged, expired, other-session, other-attempt and post-end tokens, and streams for a live one", async () => {
    const id = await fleet.submit({ prompt: "linger", model: "lingering" });
    const running: Session = await fleet.running(id);
    // Minted here as the spawner would, for a model that answers at once (the session's own lingers).
    const grant = { sessionId: id, attempt: running.attempt, projectId: "p-gw", models: ["steady"] };
    const good = await mintGatewayToken(keys(), grant, 600);

    // A live session's token streams chunk by chunk, and the call lands in its ledger.
    const res = await chat(good, hello);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const text = await res.text();
    expect(text).toMatch(/"usage"/);
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    await eventually(async () => ((await fleet.get(id)).usage?.calls ?? 0) >= 1, 10_000);
    expect((await fetch(`${fleet.gatewayUrl}/models`, { headers: { authorization: `Bearer ${good}` } })).status).toBe(
      200,
    );

    const refused = async (token: string, why: string) => {
      const r = await chat(token, hello);
      expect(r.status, why).toBe(401);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code, why).toBe("invalid_api_key");
      return body.error.message;
    };
    await refused("", "no token");
    await refused("not-a-jwt", "garbage");
    await refused(
      await mintGatewayToken({ keys: [{ kid: "g1", secret: "x".repeat(43) }] }, grant, 600),
      "signed with another key",
    );
    const [key] = keys().keys;
    const expired = await new SignJWT({ sid: id, att: running.attempt, prj: "p-gw", mdl: ["steady"] })
      .setProtectedHeader({ alg: "HS256", kid: present(key, "a gateway key").kid })
      .setIssuer("session-fleet")
      .setAudience("fleet-gateway")
      .setSubject(id)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 5)
      .sign(new TextEncoder().encode(present(key, "a gateway key").secret));
    expect(await refused(expired, "expired")).toMatch(/exp/);
    expect(
      await refused(await mintGatewayToken(keys(), { ...grant, sessionId: "no-such-session" }, 600), "other"),
    ).toMatch(/does not exist/);
    expect(await refused(await mintGatewayToken(keys(), { ...grant, projectId: "p-other" }, 600), "project")).toMatch(
      /another project/,
    );
    expect(
      await refused(await mintGatewayToken(keys(), { ...grant, attempt: running.attempt + 1 }, 600), "attempt"),
    ).toMatch(/attempt/);
    // A model the session was not given.
    const other = await chat(good, { ...hello, model: "demo" });
    expect(other.status).toBe(403);

    // The session ends: its token stops working.
    expect((await api(fleet, "POST", `/v1/sessions/${id}/cancel`, { reason: "done with it" })).status).toBe(202);
    await fleet.ended(id);
    await eventually(async () => (await chat(good, hello)).status === 401, 5_000, 100);
    expect(await refused(good, "after the end")).toMatch(/has ended \(cancelled\)/);
  }, 150_000);

  it("ends a session that crosses its token budget budget_exceeded, with the reason in its log", async () => {
    const id = await fleet.submit({ prompt: "write a file", budget: { maxTokens: 1 } });
    const done = await fleet.ended(id, 120_000);
    expect(done.status).toBe("failed");
    expect(done.error?.code).toBe("budget_exceeded");
    expect(done.error?.message).toMatch(/used [\d,]+ of its 1 tokens/);
    expect((await logLines(id)).some((l) => /budget exceeded/.test(l))).toBe(true);
    await fleet.noSandbox(id);
  }, 150_000);

  it("stops new calls of a project over its daily budget, and only that project's", async () => {
    const capped = await fleet.submit({ prompt: "write a file", projectId: "p-capped" });
    const first = await fleet.ended(capped, 120_000);
    expect(first.status).toBe("failed");
    expect(first.error?.code).toBe("budget_exceeded");
    expect(first.error?.message).toMatch(/project p-capped used [\d,]+ of its 1 tokens/);
    // The day's budget is gone: the project's next session is refused at its first call.
    const next = await fleet.submit({ prompt: "write a file", projectId: "p-capped" });
    const second = await fleet.ended(next, 120_000);
    expect(second.error?.code).toBe("budget_exceeded");
    expect(second.usage).toBeUndefined();
    // Another project is not held back.
    const free = await fleet.submit({ prompt: "write a file", projectId: "p-free" });
    expect((await fleet.ended(free, 120_000)).status).toBe("completed");
  }, 240_000);

  it("moves a call the provider answers 429 to the next fallback model, and logs the switch", async () => {
    const id = await fleet.submit({ prompt: "write a file", model: "flaky", fallbackModels: ["steady"] });
    const done = await fleet.ended(id, 120_000);
    expect(done.status, JSON.stringify(done.error)).toBe("completed");
    expect(await logLines(id)).toContain("Model flaky answered 429; retrying on fallback model steady");
    const seen = fleet.model.seen().filter((r) => !r.side && (r.model === "flaky" || r.model === "steady"));
    const i = seen.findIndex((r) => r.model === "flaky");
    expect(seen[i + 1]?.model).toBe("steady");
  }, 150_000);
});
