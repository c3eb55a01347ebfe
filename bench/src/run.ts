/**
 * `npm run bench [-- --quick] [-- --only B1,B3] [-- --cluster]`: starts the real nats-server and store, measures
 * their raw limits, then runs the fleet's services as separate processes (simulated sandboxes and
 * agent for load; local sandboxes and OpenCode for B6) and the BullMQ peer, prints one table and
 * writes bench/results/<time>-<mode>.json (and latest-<mode>.json, and the plot as SVG). Runs of
 * some scenarios only, or with --profile, write to .fleet/bench-results instead. --cluster runs B1
 * and B2 again on a three-node nats-server cluster (replicas 3) and prints the ratios.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { repoRoot } from "@fleet/devtools/infra";
import { measureBaselines } from "./baselines.js";
import { startBenchInfra } from "./env.js";
import { plotSvg } from "./plot.js";
import { b9 } from "./gateway.js";
import { b10 } from "./pool.js";
import { b1, b2, b3, b4, b5, b6, b7, b8, type B1Row, type Ctx, type PeerRunner } from "./scenarios.js";
import { renderTable, type Results } from "./table.js";
import { progress, round } from "./util.js";

const ALL = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10"] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      "no-peer": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      cluster: { type: "boolean", default: false },
    },
  });
  const only = new Set((values.only ?? ALL.join(",")).split(",").map((s) => s.trim().toUpperCase()));
  for (const s of only)
    if (!(ALL as readonly string[]).includes(s))
      throw new Error(`unknown scenario ${s}; choose from ${ALL.join(", ")}`);
  const quick = values.quick;
  const begin = Date.now();
  const log = progress(begin);
  const root = repoRoot();
  const dataDir = join(root, ".fleet", "bench");
  rmSync(dataDir, { recursive: true, force: true });

  log(
    `${quick ? "quick" : "full"} run of ${[...only].join(", ")} on ${cpus().length} cores, ${round(totalmem() / 2 ** 30)} GiB`,
  );
  const b = await startBenchInfra(dataDir, log);
  let peer: { run: PeerRunner; stop(): Promise<void> } | undefined;
  const results: Results = {
    startedAt: new Date(begin).toISOString(),
    mode: quick ? "quick" : "full",
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryGiB: round(totalmem() / 2 ** 30),
      node: process.version,
      store: b.infra.store,
      bus: "nats-server (local, file storage)",
    },
    baselines: undefined as never,
  };
  try {
    log("raw baselines: JetStream publish and consume, store findOneAndUpdate and insertMany");
    results.baselines = await measureBaselines(b, quick ? 20_000 : 100_000);
    log(
      `  publish ${round(results.baselines.jsPublish)} msg/s, consume ${round(results.baselines.jsConsume)} msg/s, findOneAndUpdate ${round(results.baselines.findOneAndUpdate)} op/s, insertMany ${round(results.baselines.insertManyDocs)} docs/s`,
    );
    if (!values["no-peer"] && (only.has("B1") || only.has("B2"))) {
      log("starting Redis for the BullMQ peer");
      const { startPeer } = await import("./peer.js");
      peer = await startPeer(b, join(dataDir, "peer"));
    }
    const ctx: Ctx = {
      b,
      quick,
      log,
      baselines: results.baselines,
      ...(values.profile ? { profileDir: join(dataDir, "profiles") } : {}),
    };
    if (only.has("B1")) results.b1 = await b1(ctx, peer?.run);
    const best = results.b1?.reduce((a, r) => (r.sessionsPerSecond > a.sessionsPerSecond ? r : a));
    if (only.has("B2")) results.b2 = await b2(ctx, best?.sessionsPerSecond ?? 100, best?.instances ?? 1, peer?.run);
    if (values.cluster && (only.has("B1") || only.has("B2")))
      results.cluster = await onCluster(ctx, join(dataDir, "cluster"), only, best);
    if (only.has("B3")) results.b3 = await b3(ctx);
    if (only.has("B4")) results.b4 = await b4(ctx);
    if (only.has("B5")) results.b5 = await b5(ctx);
    if (only.has("B6")) results.b6 = await b6(ctx);
    if (only.has("B7")) results.b7 = await b7(ctx);
    if (only.has("B8")) results.b8 = await b8(ctx);
    if (only.has("B9")) results.b9 = await b9(ctx);
    if (only.has("B10")) results.b10 = await b10(ctx);
  } finally {
    await peer?.stop();
    await b.stop();
  }
  results.seconds = round((Date.now() - begin) / 1000);
  // A run of some scenarios (or with profiling, which slows them) is kept apart from the record.
  const complete = only.size === ALL.length && !values.profile;
  const outDir = complete ? join(root, "bench", "results") : join(root, ".fleet", "bench-results");
  mkdirSync(outDir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, "-");
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(outDir, `${stamp}-${results.mode}.json`), json);
  writeFileSync(join(outDir, `latest-${results.mode}.json`), json);
  if (results.b1 || results.b2) {
    const svg = plotSvg(
      results.b1 ?? [],
      results.b2 ?? [],
      `session fleet, ${results.mode} run ${results.startedAt} on ${results.machine.cpus} cores (${results.machine.cpuModel})`,
    );
    writeFileSync(join(outDir, `latest-${results.mode}.svg`), svg);
  }
  process.stdout.write(`${renderTable(results)}\n`);
  for (const line of clusterRatios(results)) process.stdout.write(`${line}\n`);
  log(`done in ${results.seconds} s; results in ${relative(root, outDir)}/latest-${results.mode}.json`);
}

/**
 * B1 and B2 once more on a three-node cluster with replicas 3, beside the one-node run above: B2 at
 * the same offered rates, so the ratios compare like with like.
 */
async function onCluster(ctx: Ctx, dataDir: string, only: Set<string>, best: B1Row | undefined) {
  const nodes = 3;
  ctx.log(`B1/B2 on a ${nodes}-node nats-server cluster (replicas 3)`);
  const b = await startBenchInfra(dataDir, ctx.log, { cluster: nodes });
  try {
    const c: Ctx = { ...ctx, b };
    const out: NonNullable<Results["cluster"]> = { nodes };
    if (only.has("B1")) out.b1 = await b1(c, undefined);
    if (only.has("B2")) out.b2 = await b2(c, best?.sessionsPerSecond ?? 100, best?.instances ?? 1, undefined);
    return out;
  } finally {
    await b.stop();
  }
}

/** The cost of replication: one node's figure over the cluster's, row by row. */
function clusterRatios(r: Results): string[] {
  const lines: string[] = [];
  for (const one of r.b1 ?? []) {
    const three = r.cluster?.b1?.find((x) => x.instances === one.instances);
    if (three)
      lines.push(
        `B1 ${one.instances} instance(s)/stage: ${round(one.sessionsPerSecond)} sessions/s on 1 node (R1), ${round(three.sessionsPerSecond)} on 3 nodes (R3): ratio ${round(one.sessionsPerSecond / three.sessionsPerSecond, 2)}`,
      );
  }
  for (const one of r.b2 ?? []) {
    const three = r.cluster?.b2?.find((x) => x.loadFraction === one.loadFraction);
    if (three)
      lines.push(
        `B2 ${round(one.offeredPerSecond)} sessions/s: end to end minus simulated p50 ${round(one.endToEndMinusSimulated.p50, 1)} ms (R1) vs ${round(three.endToEndMinusSimulated.p50, 1)} ms (R3), ratio ${round(three.endToEndMinusSimulated.p50 / one.endToEndMinusSimulated.p50, 2)}; p99 ${round(one.endToEndMinusSimulated.p99, 1)} vs ${round(three.endToEndMinusSimulated.p99, 1)} ms`,
      );
  }
  return lines;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
