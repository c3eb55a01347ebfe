/**
 * `npm run bench [-- --quick] [-- --only B1,B3] [-- --cluster]`: starts the real nats-server and store, measures
 * their raw limits, then runs the fleet's services as separate processes (simulated sandboxes and
 * agent for load; local sandboxes and OpenCode for B6) and the BullMQ peer, prints one table and
 * writes bench/results/<time>-<mode>.json (and latest-<mode>.json, and the plot as SVG). Runs of
 * some scenarios only, or with --profile, write to .fleet/bench-results instead. --cluster measures
 * the cost of replication: B1 and B2 on one node and on a three-node cluster (replicas 3), in
 * alternating rounds on fresh servers, and B7 with the spawners spread over the cluster's nodes.
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
import { renderTable, type ClusterSide, type Results } from "./table.js";
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
    if (values.cluster && (only.has("B1") || only.has("B2") || only.has("B7")))
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
  if (results.cluster) results.cluster.summary = clusterRatios(results);
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
  for (const line of results.cluster?.summary ?? []) process.stdout.write(`${line}\n`);
  log(`done in ${results.seconds} s; results in ${relative(root, outDir)}/latest-${results.mode}.json`);
}

/**
 * The cost of replication, measured fairly: B1 and B2 on one node (replicas 1) and on a three-node
 * cluster (replicas 3), each round on fresh servers of its own (a fresh store on both sides: the
 * run above left the baselines' documents in its store), the two topologies alternating which goes
 * first, B2 at the same offered rates (from the run above); then B7 on the cluster with each
 * spawner pinned to a node in turn.
 */
async function onCluster(
  ctx: Ctx,
  dataDir: string,
  only: Set<string>,
  best: B1Row | undefined,
): Promise<NonNullable<Results["cluster"]>> {
  const nodes = 3;
  const out: NonNullable<Results["cluster"]> = { nodes, rounds: [] };
  const topology = async (size: 1 | 3, round: number) => {
    ctx.log(
      `replication round ${round + 1}: ${size === 1 ? "one nats-server (replicas 1)" : `${nodes} nodes (replicas 3)`}`,
    );
    const b = await startBenchInfra(join(dataDir, `r${round}-${size}`), ctx.log, size === 1 ? {} : { cluster: nodes });
    try {
      const c: Ctx = { ...ctx, b };
      return {
        ...(only.has("B1") ? { b1: await b1(c, undefined) } : {}),
        ...(only.has("B2") ? { b2: await b2(c, best?.sessionsPerSecond ?? 50, best?.instances ?? 1, undefined) } : {}),
      };
    } finally {
      await b.stop();
    }
  };
  for (let round = 0; round < (ctx.quick ? 2 : 3); round++) {
    const oneFirst = round % 2 === 0;
    const first = await topology(oneFirst ? 1 : 3, round);
    const second = await topology(oneFirst ? 3 : 1, round);
    out.rounds.push(oneFirst ? { one: first, three: second } : { one: second, three: first });
  }
  if (only.has("B7")) {
    ctx.log(`B7 on ${nodes} nodes, spawners spread over them`);
    const b = await startBenchInfra(join(dataDir, "b7"), ctx.log, { cluster: nodes });
    try {
      out.b7 = await b7({ ...ctx, b }, { spread: true });
    } finally {
      await b.stop();
    }
  }
  return out;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** The cost of replication: medians over the rounds of the one-node and the cluster figures, and their ratio. */
function clusterRatios(r: Results): string[] {
  const c = r.cluster;
  if (!c) return [];
  const lines: string[] = [];
  const figures = (side: "one" | "three", pick: (round: ClusterSide) => number | undefined) =>
    c.rounds.map((x) => pick(x[side])).filter((v): v is number => v !== undefined);
  for (const instances of [1, 2]) {
    const pick = (x: ClusterSide) => x.b1?.find((row) => row.instances === instances)?.sessionsPerSecond;
    const one = figures("one", pick);
    const three = figures("three", pick);
    if (one.length && three.length)
      lines.push(
        `B1 ${instances} instance(s)/stage, sessions/s over ${c.rounds.length} rounds: 1 node (R1) ${one.map((v) => round(v)).join(", ")} (median ${round(median(one))}); ${c.nodes} nodes (R3) ${three.map((v) => round(v)).join(", ")} (median ${round(median(three))}); R1/R3 ${round(median(one) / median(three), 2)}`,
      );
  }
  const fractions = c.rounds[0]?.one.b2?.map((row) => row.loadFraction) ?? [];
  for (const f of fractions) {
    for (const q of ["p50", "p99"] as const) {
      const pick = (x: ClusterSide) => x.b2?.find((row) => row.loadFraction === f)?.endToEndMinusSimulated[q];
      const one = figures("one", pick);
      const three = figures("three", pick);
      const rate = c.rounds[0]?.one.b2?.find((row) => row.loadFraction === f)?.offeredPerSecond ?? 0;
      if (one.length && three.length)
        lines.push(
          `B2 ${round(rate)} sessions/s, end to end minus simulated ${q}: R1 ${one.map((v) => round(v, 1)).join(", ")} ms (median ${round(median(one), 1)}); R3 ${three.map((v) => round(v, 1)).join(", ")} ms (median ${round(median(three), 1)}); R3/R1 ${round(median(three) / median(one), 2)}`,
        );
    }
  }
  for (const row of c.b7 ?? [])
    lines.push(
      `B7 on ${c.nodes} nodes, ${row.spawners} spawner(s) on node(s) ${(row.nodes ?? []).join(",")}: ${round(row.sessionsPerSecond)} sessions/s = ${round(row.speedup, 2)}x one spawner`,
    );
  return lines;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
