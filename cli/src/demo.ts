import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { MongoSessionStore, createLogger } from "@fleet/shared";
import { startInfra, type ManagedProcess } from "@fleet/devtools/infra";
import { type LocalE2B, startLocalE2B } from "@fleet/devtools/e2b";
import { resolveOpencodeBinary } from "@fleet/shared/agent/opencode";
import { reachableSandboxRoot } from "@fleet/shared/sandbox";
import { FleetHttpClient } from "@session-fleet/client";
import { SCRIPTED_MODEL, ensureSandboxTools, startFleetProcesses } from "./fleet.js";
import { formatLogLine, formatMetrics, formatSession } from "./format.js";
import type { CliContext } from "./infra.js";
import { createKey } from "./keys.js";

const DEMO_PROMPT =
  "Create hello.txt with a short greeting, show its content with cat, and keep a todo list of the two steps.";

/**
 * `./fleet demo`: everything on the embedded defaults (local nats-server and store, the scripted
 * model, local sandboxes with a real OpenCode), one session end to end with its log lines live,
 * then its result and timing; stops all it started, whatever happens. `--provider e2b` runs the
 * fleet's e2b provider against a local E2B (devtools/src/e2b) started here instead.
 */
export async function demoCmd(
  ctx: CliContext,
  options: { prompt?: string | undefined; keep: boolean; provider?: "local" | "e2b" },
): Promise<number> {
  const prompt = options.prompt ?? DEMO_PROMPT;
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
  let e2b: LocalE2B | undefined;
  try {
    if (options.provider === "e2b") {
      // The agent's binary is readable in its sandboxes, as an E2B template would hold it.
      e2b = await startLocalE2B(
        { readable: [dirname(dirname(resolveOpencodeBinary()))] },
        createLogger({ name: "local-e2b", level: "warn" }),
      );
      step(`local E2B: control plane at ${e2b.apiUrl}, sandboxes at ${e2b.sandboxUrl}`);
    }
    const { apiUrl, gatewayUrl, modelUrl } = await startFleetProcesses(ctx, infra, {
      logDir: join(dir, "logs"),
      sandboxDir: sandboxes,
      persistent: false,
      env: { FLEET_DB: "fleet-demo", ...(e2b ? { SANDBOX_PROVIDER: "e2b", ...e2b.env } : {}) },
      started: (name, proc, url) => {
        owned.push(proc);
        if (name === SCRIPTED_MODEL) step(`scripted model server at ${url}`);
      },
    });
    step(`api, model gateway, spawner, poller and watchdog running; api at ${apiUrl}`);
    // What an E2B sandbox reaches here: the model gateway, the model and the fleet's callbacks.
    e2b?.setEgress([apiUrl, gatewayUrl, modelUrl].filter(Boolean));
    const store = await MongoSessionStore.connect(
      { uri: infra.mongoUri, database: "fleet-demo" },
      createLogger({ name: "demo", level: "warn" }),
    );
    const { key } = await createKey(store, ["demo"], "demo").finally(() => store.close());
    const api = new FleetHttpClient({ baseUrl: apiUrl, apiKey: key });
    const submitted = Date.now();
    const { sessionId } = await api.submit({ projectId: "demo", prompt });
    step(`submitted session ${sessionId}`);
    let status = "unknown";
    for await (const ev of api.follow(sessionId)) {
      if (ev.type === "log") ctx.out(`    ${formatLogLine(ev.line)}`);
      else status = ev.end.status;
    }
    const endToEnd = Date.now() - submitted;
    step(`session ${status} in ${(endToEnd / 1000).toFixed(2)} s end to end`);
    const [session, metrics] = await Promise.all([api.get(sessionId), api.metrics(sessionId)]);
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
    await e2b?.stop();
    await infra.stop();
    if (!options.keep) rmSync(sandboxes, { recursive: true, force: true });
    step(`done; logs in ${join(dir, "logs")}`);
  }
}
