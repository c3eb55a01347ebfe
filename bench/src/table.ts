import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Baselines } from "./baselines.js";
import type { B9Result } from "./gateway.js";
import type { B10Result } from "./pool.js";
import type { B1Row, B2Row, B3Row, B4Row, B5Result, B6Result, B7Row, B8Row } from "./scenarios.js";
import { round } from "./util.js";

/** One topology's B1 and B2 in a round of `--cluster`. */
export interface ClusterSide {
  b1?: B1Row[];
  b2?: B2Row[];
}

export interface Results {
  startedAt: string;
  mode: "quick" | "full";
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; store: string; bus: string };
  baselines: Baselines;
  b1?: B1Row[];
  b2?: B2Row[];
  b3?: B3Row[];
  b4?: B4Row[];
  b5?: B5Result;
  b6?: B6Result;
  b7?: B7Row[];
  b8?: B8Row[];
  b9?: B9Result;
  b10?: B10Result;
  /**
   * `--cluster`: B1 and B2 on one node (replicas 1) and on a three-node cluster (replicas 3), in
   * rounds on fresh servers; B7 on the cluster with its spawners spread over the nodes.
   */
  cluster?: {
    nodes: number;
    rounds: Array<{ one: ClusterSide; three: ClusterSide }>;
    b7?: B7Row[];
    /** The ratios as printed, for the record. */
    summary?: string[];
  };
  seconds?: number;
}

type Row = [figure: string, value: string, target: string, verdict: string];

const ok = (pass: boolean | undefined): string => (pass === undefined ? "" : pass ? "met" : "MISSED");
const ms = (v: number): string => (Number.isFinite(v) ? `${round(v, 1)} ms` : "n/a");

/** The run as one table: each figure, its target and whether it was met. */
export function renderTable(r: Results): string {
  const rows = tableRows(r);
  const header: Row = ["figure", "value", "target", "verdict"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [
    line(["figure", "value", "target", "verdict"]),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}

/** The same table in Markdown, for docs/benchmarks.md (`node bench/dist/src/table.js <results.json>`). */
export function renderMarkdown(r: Results): string {
  const cell = (c: string): string => c.replace(/\|/g, "\\|");
  return [
    "| Figure | Value | Target | Verdict |",
    "|---|---|---|---|",
    ...tableRows(r).map((row) => `| ${row.map(cell).join(" | ")} |`),
  ].join("\n");
}

function tableRows(r: Results): Row[] {
  const rows: Row[] = [];
  const base = r.baselines;
  rows.push(["raw JetStream async publish (file)", `${round(base.jsPublish)} msg/s`, "baseline", ""]);
  rows.push(["raw JetStream pull consume + ack", `${round(base.jsConsume)} msg/s`, "baseline", ""]);
  rows.push(["raw store findOneAndUpdate (16 at once)", `${round(base.findOneAndUpdate)} op/s`, "baseline", ""]);
  rows.push(["raw store insertMany (100 per call)", `${round(base.insertManyDocs)} docs/s`, "baseline", ""]);
  for (const b of r.b1 ?? []) {
    rows.push([
      `B1 ${b.instances}/stage sessions/s`,
      `${round(b.sessionsPerSecond)} (${b.failed} not completed)`,
      ">= 1000 where the store allows",
      "",
    ]);
    const byCommand = Object.entries(b.storeOpsByCommandPerSession ?? {})
      .map(([c, v]) => `${c} ${round(v)}`)
      .join(", ");
    rows.push([
      `B1 ${b.instances}/stage ops per session`,
      `${round(b.busMsgsPerSession)} bus + ${round(b.storeOpsPerSession)} store${byCommand ? ` (${byCommand})` : ""}`,
      "",
      "",
    ]);
    rows.push([`B1 ${b.instances}/stage efficiency`, `${round(b.efficiency, 2)}`, ">= 0.5", ok(b.efficiency >= 0.5)]);
    if (b.ratioToPeer !== undefined)
      rows.push([
        `B1 ${b.instances}/stage fleet / BullMQ peer`,
        `${round(b.ratioToPeer, 2)} (peer ${round(b.peerSessionsPerSecond ?? 0)}/s)`,
        ">= 1.0",
        ok(b.ratioToPeer >= 1),
      ]);
  }
  for (const b of r.b2 ?? []) {
    const at = `B2 @${Math.round(b.loadFraction * 100)}% (${round(b.offeredPerSecond)}/s)`;
    for (const [name, s] of [
      ["request→claimed", b.requestToClaimed],
      ["claimed→running", b.claimedToRunning],
      ["idle→completed", b.idleToCompleted],
    ] as const) {
      rows.push([`${at} ${name} p50/p99`, `${ms(s.p50)} / ${ms(s.p99)}`, "<= 1 / 5 ms", ok(s.p50 <= 1 && s.p99 <= 5)]);
    }
    const e = b.endToEndMinusSimulated;
    rows.push([
      `${at} end to end p50/p99`,
      `${ms(e.p50)} / ${ms(e.p99)}`,
      "<= 5 / 20 ms",
      ok(e.p50 <= 5 && e.p99 <= 20),
    ]);
    const pe = b.peer?.endToEndMinusSimulated;
    if (pe) rows.push([`${at} BullMQ peer end to end p50/p99`, `${ms(pe.p50)} / ${ms(pe.p99)}`, "reference", ""]);
  }
  for (const b of r.b3 ?? []) {
    const at = `B3 ${b.sessions} sessions × ${b.viewersPerSession} viewer(s)`;
    rows.push([`${at} emitted by the agents`, `${round(b.offeredLinesPerSecond)} lines/s`, "", ""]);
    rows.push([
      `${at} to viewers`,
      `${round(b.ingestLinesPerSecond)} lines/s = ${round(b.ingestVsRawPublish, 2)}× raw publish`,
      ">= 0.5×",
      ok(b.ingestVsRawPublish >= 0.5),
    ]);
    rows.push([
      `${at} stored`,
      `${round(b.storedLinesPerSecond)} lines/s = ${round(b.storedVsRawInsertMany, 2)}× raw insertMany`,
      ">= 0.5×",
      ok(b.storedVsRawInsertMany >= 0.5),
    ]);
    rows.push([`${at} viewer p99`, ms(b.viewerLatency.p99), "<= 50 ms", ok(b.viewerLatency.p99 <= 50)]);
    rows.push([`${at} event→viewer p99`, ms(b.eventToViewer.p99), "", ""]);
    // Rows of runs before the store was timed apart have no event→stored figure.
    if (b.eventToStored)
      rows.push([`${at} event→stored p99`, ms(b.eventToStored.p99), "<= 1000 ms", ok(b.eventToStored.p99 <= 1000)]);
    rows.push([
      `${at} lines missing / doubled`,
      `${b.missing} / ${b.doubled ?? "n/a"}`,
      "0 / 0",
      ok(b.missing === 0 && (b.doubled ?? 0) === 0),
    ]);
  }
  for (const b of r.b4 ?? []) {
    const at = `B4 idle→completed, event stream ${b.eventStream}`;
    const target = b.eventStream === "on" ? "p99 <= 50 ms" : `<= 2 × ${b.statusIntervalMs} ms`;
    const pass = b.eventStream === "on" ? b.idleToCompleted.p99 <= 50 : b.idleToCompleted.max <= 2 * b.statusIntervalMs;
    rows.push([
      `${at} p50/p99`,
      `${ms(b.idleToCompleted.p50)} / ${ms(b.idleToCompleted.p99)} (max ${ms(b.idleToCompleted.max)})`,
      target,
      ok(pass),
    ]);
  }
  if (r.b4) rows.push(["B4 reference: the original's 30 s poll", "15000 ms mean / 30000 ms worst", "", ""]);
  if (r.b5) {
    for (const b of r.b5.rows) {
      rows.push([
        `B5 poller memory, ${b.sessions} watched`,
        `${round(b.bytesPerSession / 1024, 1)} KB/session rss (${round(b.watchingRssMb)} MB), heap <= ${round(b.heapBytesPerSession / 1024, 1)} KB/session`,
        "<= 20 KB",
        ok(b.bytesPerSession <= 20 * 1024),
      ]);
      if (b.marginalBytesPerSession !== undefined) {
        rows.push([
          `B5 poller memory, each session added up to ${b.sessions}`,
          `${round(b.marginalBytesPerSession / 1024, 1)} KB rss`,
          "<= 20 KB",
          ok(b.marginalBytesPerSession <= 20 * 1024),
        ]);
      }
    }
    rows.push([
      `B5 soak ${r.b5.soakSeconds} s, 2nd half vs 1st`,
      `${round(r.b5.growthAfterWarmupPct, 2)}%`,
      "no growth (< +5%)",
      ok(r.b5.growthAfterWarmupPct < 5),
    ]);
    rows.push([
      `B5 poller CPU while watching (agents silent)`,
      `${round(r.b5.cpuMsPerWatchedMinute, 2)} ms per session-minute`,
      "",
      "",
    ]);
  }
  if (r.b6) {
    const s = r.b6;
    rows.push([
      "B6 setup (median)",
      Object.entries(s.setupMs)
        .map(([k, v]) => `${k.replace(/Ms$/, "")} ${round(v, 0)}`)
        .join(", "),
      "",
      "",
    ]);
    rows.push(["B6 request → first tool call", ms(s.requestToFirstToolMs), "", ""]);
    rows.push(["B6 end to end", ms(s.endToEndMs), "", ""]);
    rows.push(["B6 fleet CPU per session", `${round(s.fleetCpuSecondsPerSession, 2)} s`, "", ""]);
    rows.push([
      "B6 fleet CPU / end-to-end time",
      `${round(s.fleetShareOfEndToEnd * 100, 2)}%`,
      "<= 2%",
      ok(s.fleetShareOfEndToEnd <= 0.02),
    ]);
  }
  for (const b of r.b7 ?? []) {
    const target = b.spawners === 2 ? ">= 1.8×" : b.spawners === 4 ? ">= 3.2×" : "";
    const pass = b.spawners === 2 ? b.speedup >= 1.8 : b.spawners === 4 ? b.speedup >= 3.2 : undefined;
    rows.push([
      `B7 ${b.spawners} spawner(s), 200 ms create`,
      `${round(b.sessionsPerSecond)} sessions/s = ${round(b.speedup, 2)}×`,
      target,
      ok(pass),
    ]);
  }
  for (const b of r.b8 ?? []) {
    const at = `B8 poller SIGKILL, watch ack wait ${round(b.watchAckWaitMs / 1000)} s`;
    const target = b.watchAckWaitMs === 6_000 ? "< 10 s" : "reference";
    const pass =
      b.watchAckWaitMs === 6_000 ? b.reattach.max < 10_000 && b.notReattached === 0 && b.notCompleted === 0 : undefined;
    rows.push([
      `${at}: ${b.sessions} sessions re-attached p50/max`,
      `${ms(b.reattach.p50)} / ${ms(b.reattach.max)} (${b.notReattached} not re-attached, ${b.notCompleted} not completed)`,
      target,
      ok(pass),
    ]);
  }
  const g = r.b9;
  if (g) {
    const at = `B9 gateway, ${g.calls} streamed calls of ${g.chunksPerCall} chunks`;
    rows.push([
      `${at}: time to first token added p50 / p99`,
      `${ms3(g.addedTtftP50)} / ${ms3(g.addedTtftP99)} (direct ${ms3(g.direct.ttftP50)} / ${ms3(g.direct.ttftP99)})`,
      "<= 2 ms / <= 10 ms",
      ok(g.addedTtftP50 <= 2 && g.addedTtftP99 <= 10),
    ]);
    rows.push([
      `${at}: per-chunk latency added p50 / p99`,
      `${ms3(g.addedChunkP50)} / ${ms3(g.addedChunkP99)} (direct ${ms3(g.direct.chunkP50)} / ${ms3(g.direct.chunkP99)})`,
      "p50 <= 1 ms",
      ok(g.addedChunkP50 <= 1),
    ]);
    const updates = g.storeOpsPerCall.update ?? 0;
    rows.push([
      `${at}: store commands per call (ledger complete: ${g.ledgerComplete ? "yes" : "NO"})`,
      Object.entries(g.storeOpsPerCall)
        .map(([c, n]) => `${c} ${n}`)
        .join(", "),
      "ledger <= 1 write per call",
      ok(updates <= 1 && g.ledgerWritesPerCall <= 1 && g.ledgerComplete),
    ]);
  }
  const w = r.b10;
  if (w) {
    const at = `B10 warm pool, one session per ${round(w.intervalMs / 1000)} s`;
    rows.push([
      `${at}: request → first tool call p50 / p99, warm (cold)`,
      `${ms(w.pooled.firstToolP50)} / ${ms(w.pooled.firstToolP99)} (${ms(w.cold.firstToolP50)} / ${ms(w.cold.firstToolP99)})`,
      "<= 1000 ms / <= 2000 ms",
      ok(w.pooled.firstToolP50 <= 1_000 && w.pooled.firstToolP99 <= 2_000),
    ]);
    rows.push([
      `${at}: setup p50, warm (cold)`,
      `${ms(w.pooled.setupP50)} (${ms(w.cold.setupP50)})`,
      "<= 300 ms",
      ok(w.pooled.setupP50 <= 300),
    ]);
    rows.push([
      `${at}: hit ratio; warm sandbox-seconds per session`,
      `${round(w.pooled.hitRatio * 100, 1)}% (${w.pooled.warm}/${w.pooled.sessions}); ${round(w.pooled.warmSandboxSecondsPerSession, 1)} s`,
      ">= 95%",
      ok(w.pooled.hitRatio >= 0.95),
    ]);
  }
  return rows;
}

const ms3 = (v: number): string => (Number.isFinite(v) ? `${round(v, 3)} ms` : "n/a");

// Run as a script: print a results file's table in Markdown.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: node bench/dist/src/table.js <bench/results/….json>");
  process.stdout.write(`${renderMarkdown(JSON.parse(readFileSync(file, "utf8")) as Results)}\n`);
}
