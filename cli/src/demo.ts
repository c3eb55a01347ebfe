import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { MongoSessionStore, createLogger, type Session } from "@fleet/shared";
import { startInfra, type ManagedProcess } from "@fleet/devtools/infra";
import { reachableSandboxRoot } from "@fleet/shared/sandbox";
import { ApiClient } from "./client.js";
import { SCRIPTED_MODEL, ensureSandboxTools, startFleetProcesses } from "./fleet.js";
import { formatLogLine, formatMetrics, formatSession, type MetricsView } from "./format.js";
import type { CliContext } from "./infra.js";
import { createKey } from "./keys.js";

const DEMO_PROMPT =
  "Create hello.txt with a short greeting, show its content with cat, and keep a todo list of the two steps.";

/**
 * `./fleet demo`: everything on the embedded defaults (local nats-server and store, the scripted
 * model, local sandboxes with a real OpenCode), one session end to end with its log lines live,
 * then its result and timing; stops all it started, whatever happens.
 */
export async function demoCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { prompt: { type: "string", default: DEMO_PROMPT }, keep: { type: "boolean", default: false } },
  });
  const dir = join(ctx.home, "demo");
  const sandboxes = reachableSandboxRoot(join(dir, "sandboxes"));
  rmSync(dir, { recursive: true, force: true });
  const started = Date.now();
  const step = (m: string): void => ctx.out(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${m}`);
  const owned: ManagedProcess[] = [];
  ensureSandboxTools(ctx);
  step("starting nats-server and the store");
  const infra = await startInfra({
    dataDir: join(dir, "infra"),
    natsUrl: ctx.env.NATS_URL,
    mongoUri: ctx.env.MONGODB_URI,
    dockerHost: ctx.env.DOCKER_HOST,
    natsAuth: true,
    progress: step,
  });
  try {
    const { apiUrl } = await startFleetProcesses(ctx, infra, {
      logDir: join(dir, "logs"),
      sandboxDir: sandboxes,
      persistent: false,
      env: { FLEET_DB: "fleet-demo" },
      started: (name, proc, url) => {
        owned.push(proc);
        if (name === SCRIPTED_MODEL) step(`scripted model server at ${url}`);
      },
    });
    step(`api, model gateway, spawner, poller and watchdog running; api at ${apiUrl}`);
    const store = await MongoSessionStore.connect(
      { uri: infra.mongoUri, database: "fleet-demo" },
      createLogger({ name: "demo", level: "warn" }),
    );
    const { key } = await createKey(store, ["demo"], "demo").finally(() => store.close());
    const api = new ApiClient(apiUrl, key);
    const submitted = Date.now();
    const { sessionId } = await api.request<{ sessionId: string }>("POST", "/v1/sessions", {
      projectId: "demo",
      prompt: values.prompt,
    });
    step(`submitted session ${sessionId}`);
    let status = "unknown";
    for await (const ev of api.follow(sessionId)) {
      if (ev.event === "log") ctx.out(`    ${formatLogLine(ev.data as { seq: number; at: number; line: string })}`);
      if (ev.event === "end") status = (ev.data as { status: string }).status;
    }
    const endToEnd = Date.now() - submitted;
    step(`session ${status} in ${(endToEnd / 1000).toFixed(2)} s end to end`);
    const session = await api.request<Session>("GET", `/v1/sessions/${sessionId}`);
    const metrics = await api.request<MetricsView>("GET", `/v1/sessions/${sessionId}/metrics`);
    ctx.out("");
    for (const l of [
      ...formatSession(session),
      "",
      ...formatMetrics(metrics),
      `end to end     ${(endToEnd / 1000).toFixed(2).padStart(7)} s`,
    ])
      ctx.out(l);
    ctx.out("");
    return status === "completed" ? 0 : 1;
  } finally {
    step("stopping");
    for (const p of owned.reverse()) await p.stop(10_000);
    await infra.stop();
    if (!values.keep) rmSync(sandboxes, { recursive: true, force: true });
    step(`done; logs in ${join(dir, "logs")}`);
  }
}
