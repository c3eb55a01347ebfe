import { randomBytes } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { CallbackKeys, MongoSessionStore, createLogger, mintGatewayToken } from "@fleet/shared";
import { freePort, startService } from "@fleet/devtools/infra";
import { startScriptedModel } from "@fleet/devtools/model";
import { serverCounters } from "./env.js";
import type { Ctx } from "./scenarios.js";
import { percentile, round } from "./util.js";

// ---------------------------------------------------------------------------------------------
// B9 model gateway overhead: the same streamed calls straight to the scripted model and through
// the gateway, interleaved in one run

export interface B9Result {
  calls: number;
  chunksPerCall: number;
  chunkSpacingMs: number;
  direct: { ttftP50: number; ttftP99: number; chunkP50: number; chunkP99: number };
  gateway: { ttftP50: number; ttftP99: number; chunkP50: number; chunkP99: number };
  /** Gateway minus direct. */
  addedTtftP50: number;
  addedTtftP99: number;
  addedChunkP50: number;
  addedChunkP99: number;
  /** Store commands the gateway sent per call while the calls ran (FerretDB's own counters), by command. */
  storeOpsPerCall: Record<string, number>;
  /** Ledger writes per call (updates, each one bulk write of three upserts). */
  ledgerWritesPerCall: number;
  /** The session's ledger total equals the calls made through the gateway. */
  ledgerComplete: boolean;
}

interface Timing {
  ttft: number;
  /** Per chunk: arrival minus the model's write time (same process, same clock). */
  chunks: number[];
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
const now = (): number => performance.timeOrigin + performance.now();

/** One streamed call, timed on the client: first event, and each chunk's latency from its write. */
function streamedCall(url: string, token: string, body: string): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const started = now();
    let ttft = Number.NaN;
    const chunks: number[] = [];
    let partial = "";
    const req = http.request(
      `${url}/chat/completions`,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${token}`,
        },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`${url} answered ${res.statusCode}`));
          return;
        }
        res.setEncoding("utf8");
        res.on("data", (text: string) => {
          const at = now();
          if (Number.isNaN(ttft)) ttft = at - started;
          const lines = (partial + text).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) {
            const m = /"sent_at":([0-9.]+)/.exec(line);
            if (m) chunks.push(at - Number(m[1]));
          }
        });
        res.on("end", () => resolve({ ttft, chunks }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export async function b9(ctx: Ctx): Promise<B9Result> {
  const calls = ctx.quick ? 300 : 1_000;
  const chunksPerCall = 20;
  const chunkSpacingMs = 2;
  const logger = createLogger({ name: "bench-model", level: "silent" });
  // Calls without tools are answered with the side text: 20 chunks of 24 characters, 2 ms apart.
  const model = await startScriptedModel({
    port: 0,
    scenario: {
      name: "b9",
      turns: [{ type: "text", text: "unused" }],
      sideText: "x".repeat(24 * chunksPerCall),
      delayMs: chunkSpacingMs,
    },
    apiKey: "bench-upstream-key",
    stampChunks: true,
    logger,
  });
  const namespace = `bench-b9-${process.pid.toString(36)}`;
  const keys = `g1:${randomBytes(32).toString("base64url")}`;
  const store = await MongoSessionStore.connect(
    { uri: ctx.b.infra.mongoUri, database: namespace },
    createLogger({ name: "bench", level: "silent" }),
  );
  await store.init();
  await store.create({ id: "b9-session", projectId: "bench", prompt: "b9", config: {} });
  const token = await mintGatewayToken(
    { keys: CallbackKeys.parse(keys) },
    { sessionId: "b9-session", attempt: 0, projectId: "bench", models: ["scripted"] },
    3_600,
  );
  const metricsPort = await freePort();
  const gateway = await startService(
    "gateway",
    {
      natsUrl: ctx.b.infra.natsUrl,
      mongoUri: ctx.b.infra.mongoUri,
      dataDir: join(ctx.b.dataDir, namespace),
      agentSecret: randomBytes(32).toString("base64url"),
      modelUrl: model.url,
      namespace,
      database: namespace,
      env: {
        LOG_LEVEL: "warn",
        FLEET_GATEWAY_KEYS: keys,
        FLEET_MODEL_API_KEY: "bench-upstream-key",
        GATEWAY_METRICS_PORT: String(metricsPort),
      },
    },
    0,
  );
  const gatewayUrl = gateway.url ?? "";
  const body = JSON.stringify({ model: "scripted", messages: [{ role: "user", content: "hi" }], stream: true });
  try {
    ctx.log(
      `B9 gateway overhead: ${calls} streamed calls of ${chunksPerCall} chunks (${chunkSpacingMs} ms apart) straight to the scripted model and as many through the gateway, interleaved`,
    );
    // Warm-up on both paths (connections, JIT, the gateway's session cache), not counted.
    for (let i = 0; i < 30; i++) {
      await streamedCall(model.url, "bench-upstream-key", body);
      await streamedCall(gatewayUrl, token, body);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const before = await serverCounters(ctx.b);
    const direct: Timing[] = [];
    const through: Timing[] = [];
    for (let i = 0; i < calls; i++) {
      // Alternating which goes first, so neither path always follows the other's work.
      if (i % 2 === 0) {
        direct.push(await streamedCall(model.url, "bench-upstream-key", body));
        through.push(await streamedCall(gatewayUrl, token, body));
      } else {
        through.push(await streamedCall(gatewayUrl, token, body));
        direct.push(await streamedCall(model.url, "bench-upstream-key", body));
      }
    }
    // The ledger writes after each answer: let the last ones land before counting.
    const expected = calls + 30;
    let recorded = 0;
    for (let i = 0; i < 50 && recorded < expected; i++) {
      recorded = (await store.sessionUsage("b9-session"))?.calls ?? 0;
      if (recorded < expected) await new Promise((r) => setTimeout(r, 100));
    }
    const after = await serverCounters(ctx.b);
    const storeOpsPerCall = Object.fromEntries(
      Object.entries(after.storeOpsByCommand)
        .map(([c, n]) => [c, round((n - (before.storeOpsByCommand[c] ?? 0)) / calls, 3)] as const)
        .filter(([, v]) => v > 0),
    );
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const writes = Number(/fleet_gateway_ledger_writes_total\{[^}]*result="ok"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const figures = (ts: Timing[]) => {
      const ttft = ts.map((t) => t.ttft);
      const chunks = ts.flatMap((t) => t.chunks);
      return {
        ttftP50: round(percentile(ttft, 50), 3),
        ttftP99: round(percentile(ttft, 99), 3),
        chunkP50: round(percentile(chunks, 50), 3),
        chunkP99: round(percentile(chunks, 99), 3),
      };
    };
    const d = figures(direct);
    const g = figures(through);
    const result: B9Result = {
      calls,
      chunksPerCall,
      chunkSpacingMs,
      direct: d,
      gateway: g,
      addedTtftP50: round(g.ttftP50 - d.ttftP50, 3),
      addedTtftP99: round(g.ttftP99 - d.ttftP99, 3),
      addedChunkP50: round(g.chunkP50 - d.chunkP50, 3),
      addedChunkP99: round(g.chunkP99 - d.chunkP99, 3),
      storeOpsPerCall,
      ledgerWritesPerCall: round(writes / expected, 3),
      ledgerComplete: recorded === expected,
    };
    ctx.log(
      `  time to first token p50/p99: direct ${d.ttftP50}/${d.ttftP99} ms, gateway ${g.ttftP50}/${g.ttftP99} ms; chunk latency p50/p99: direct ${d.chunkP50}/${d.chunkP99} ms, gateway ${g.chunkP50}/${g.chunkP99} ms`,
    );
    ctx.log(
      `  store commands per call ${JSON.stringify(storeOpsPerCall)}; ledger writes per call ${result.ledgerWritesPerCall}; ledger has ${recorded} of ${expected} calls`,
    );
    return result;
  } finally {
    await gateway.process.stop();
    await model.close();
    await store.close();
    await ctx.b.mongo
      .db(namespace)
      .dropDatabase()
      .catch(() => undefined);
  }
}
