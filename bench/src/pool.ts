import { randomBytes } from "node:crypto";
import { createLogger, subjectFor } from "@fleet/shared";
import { startService } from "@fleet/devtools/infra";
import { SCENARIOS, type ScenarioInput, startScriptedModel } from "@fleet/devtools/model";
import type { Ctx } from "./scenarios.js";
import { realAgentServices } from "./env.js";
import { percentile, round } from "./util.js";

// ---------------------------------------------------------------------------------------------
// B10 the warm pool: request to first tool call, cold and warm, in one run (local sandboxes,
// OpenCode, the scripted model), at a steady one session per interval

export interface B10Phase {
  sessions: number;
  firstToolP50: number;
  firstToolP99: number;
  setupP50: number;
  setupP99: number;
  endToEndP50: number;
  /** Sessions that started on a pooled agent. */
  warm: number;
}

export interface B10Result {
  intervalMs: number;
  cold: B10Phase;
  pooled: B10Phase & {
    hitRatio: number;
    /** Warm (unclaimed, ready) sandbox-seconds the pool kept, per session served. */
    warmSandboxSecondsPerSession: number;
  };
}

interface Row {
  firstTool: number;
  setup: number;
  e2e: number;
  warm: boolean;
}

/** The timings of a row, in ms. */
type Timing = Exclude<keyof Row, "warm">;

type SessionDoc = {
  _id: string;
  status: string;
  completedAt?: number;
  metrics?: { setup?: { totalMs?: number; warm?: boolean } };
};

export async function b10(ctx: Ctx): Promise<B10Result> {
  const n = ctx.quick ? 4 : 12;
  const intervalMs = 10_000;
  const model = await startScriptedModel({
    port: 0,
    scenario: SCENARIOS.demo as ScenarioInput,
    byModel: SCENARIOS,
    logger: createLogger({ name: "bench-model", level: "silent" }),
  });
  try {
    ctx.log(`B10 warm pool: ${n} session(s) cold, then ${n} with the pool, one every ${intervalMs / 1000} s`);
    const cold = await phase(ctx, model.url, "b10c", n, intervalMs, {});
    const pooled = await phase(ctx, model.url, "b10w", n, intervalMs, {
      FLEET_POOL_MAX: "2",
      FLEET_POOL_MIN: "1",
      FLEET_POOL_BURST: "1",
      FLEET_POOL_REFILL_MS: "8000",
    });
    return {
      intervalMs,
      cold: cold.summary,
      pooled: {
        ...pooled.summary,
        hitRatio: pooled.summary.warm / Math.max(1, pooled.summary.sessions),
        warmSandboxSecondsPerSession: pooled.warmSeconds / Math.max(1, pooled.summary.sessions),
      },
    };
  } finally {
    await model.close();
  }
}

async function phase(
  ctx: Ctx,
  modelUrl: string,
  name: string,
  n: number,
  intervalMs: number,
  env: Record<string, string>,
): Promise<{ summary: B10Phase; warmSeconds: number }> {
  const namespace = `${name}-${randomBytes(4).toString("hex")}`;
  // The sessions ask for the fleet's own model, which pooled agents are started with.
  const common = realAgentServices(ctx.b, namespace, modelUrl, { FLEET_MODEL: "demo", ...env });
  // The model gateway, as `./fleet up` runs it: pooled agents hold an inert token until claimed.
  const keys = `g1:${randomBytes(32).toString("base64url")}`;
  const gateway = await startService(
    "gateway",
    { ...common, env: { ...common.env, FLEET_GATEWAY_KEYS: keys, FLEET_MODEL_API_KEY: "none" } },
    0,
  );
  const viaGateway = {
    ...common,
    env: { ...common.env, FLEET_GATEWAY_KEYS: keys, FLEET_GATEWAY_URL: gateway.url ?? "" },
  };
  const services = [gateway, await startService("spawner", viaGateway, 0), await startService("poller", common, 0)];
  const db = ctx.b.mongo.db(namespace);
  const pool = db.collection<{ _id: string; state: string }>("pool");
  const pooled = env.FLEET_POOL_MAX !== undefined;
  let warmSeconds = 0;
  let sampling = true;
  const sampler = (async () => {
    let last = Date.now();
    while (sampling) {
      await new Promise((r) => setTimeout(r, 250));
      const now = Date.now();
      if (pooled) warmSeconds += ((await pool.countDocuments({ state: "warm" })) * (now - last)) / 1000;
      last = now;
    }
  })();
  try {
    const rows: Row[] = [];
    // Session 0 warms the services up (module loading, JIT) and fills the pool's demand window; not counted.
    if (pooled) {
      await run(ctx, db, namespace, `${name}-0`);
      await waitFor(async () => (await pool.countDocuments({ state: "warm" })) >= 1, 90_000);
    } else await run(ctx, db, namespace, `${name}-0`);
    const start = Date.now();
    for (let i = 1; i <= n; i++) {
      const due = start + (i - 1) * intervalMs;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const row = await run(ctx, db, namespace, `${name}-${i}`);
      rows.push(row);
      ctx.log(
        `  ${name}-${i}: ${row.warm ? "warm" : "cold"}, setup ${row.setup} ms, first tool call after ${row.firstTool} ms, end to end ${row.e2e} ms`,
      );
    }
    /** A percentile of one timing over the counted sessions. */
    const p = (timing: Timing, q: number) =>
      percentile(
        rows.map((r) => r[timing]),
        q,
      );
    return {
      summary: {
        sessions: rows.length,
        firstToolP50: p("firstTool", 50),
        firstToolP99: p("firstTool", 99),
        setupP50: p("setup", 50),
        setupP99: p("setup", 99),
        endToEndP50: p("e2e", 50),
        warm: rows.filter((r) => r.warm).length,
      },
      warmSeconds: round(warmSeconds, 1),
    };
  } finally {
    sampling = false;
    await sampler;
    await Promise.all(services.map((s) => s.process.stop()));
    await db.dropDatabase().catch(() => undefined);
  }
}

async function run(ctx: Ctx, db: ReturnType<Ctx["b"]["mongo"]["db"]>, namespace: string, id: string): Promise<Row> {
  const requestedAt = Date.now();
  await ctx.b.js.publish(
    subjectFor(namespace, "requested"),
    JSON.stringify({ v: 1, sessionId: id, projectId: "bench", prompt: "demo", requestedAt, config: { model: "demo" } }),
    { msgID: `requested:${id}` },
  );
  const sessions = db.collection<SessionDoc>("sessions");
  let doc: SessionDoc | null = null;
  await waitFor(async () => {
    doc = await sessions.findOne({ _id: id });
    return doc !== null && ["completed", "failed"].includes(doc.status);
  }, 180_000);
  const ended = doc as SessionDoc | null;
  if (ended?.status !== "completed") throw new Error(`B10 session ${id} ${ended?.status}`);
  const firstTool = await db
    .collection<{ at: number; kind: string; sessionId: string; seq: number }>("session_logs")
    .find({ sessionId: id, kind: "tool" })
    .sort({ seq: 1 })
    .limit(1)
    .next();
  return {
    firstTool: (firstTool?.at ?? Number.NaN) - requestedAt,
    setup: ended.metrics?.setup?.totalMs ?? Number.NaN,
    e2e: (ended.completedAt ?? Date.now()) - requestedAt,
    warm: ended.metrics?.setup?.warm === true,
  };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`B10: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
