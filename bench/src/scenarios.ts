import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { LIMITS, createLogger, subjectFor, type SessionLog } from "@fleet/shared";
import { freePort, startService, type ServiceName } from "@fleet/devtools/infra";
import { natsServers } from "@fleet/shared/bus";
import { SCENARIOS, startScriptedModel, type ScenarioInput } from "@fleet/devtools/model";
import type { Baselines } from "./baselines.js";
import { sampleArchived } from "./stored.js";
import {
  harnessReads,
  realAgentServices,
  serverCounters,
  sessionTimes,
  waitEnded,
  withBenchFleet,
  type BenchFleet,
  type BenchInfra,
  type FleetSpec,
} from "./env.js";
import { cpuSeconds, maxOf, minOf, percentile, round, rssBytes, sleep, spread, until, type Spread } from "./util.js";

export interface Ctx {
  b: BenchInfra;
  quick: boolean;
  /** Folder for V8 CPU profiles of the services B6 starts (node --cpu-prof), when set. */
  profileDir?: string;
  log: (line: string) => void;
  baselines: Baselines;
}

let runs = 0;
const ns = (name: string): string => `bench-${name}-${process.pid.toString(36)}-${(runs++).toString(36)}`;

/** Publishes `n` requests as fast as the bus takes them; returns each session's request time. */
async function flood(
  fleet: BenchFleet,
  prefix: string,
  n: number,
  extra: Record<string, unknown> = {},
): Promise<Map<string, number>> {
  const at = new Map<string, number>();
  for (let i = 0; i < n; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => {
        const id = `${prefix}-${i + j}`;
        at.set(id, Date.now());
        return fleet.request(id, extra);
      }),
    );
  }
  return at;
}

/** Publishes at `rate` sessions/s for `seconds`; returns each session's request time. */
async function paced(fleet: BenchFleet, prefix: string, rate: number, seconds: number): Promise<Map<string, number>> {
  const at = new Map<string, number>();
  const start = Date.now();
  const total = Math.max(1, Math.round(rate * seconds));
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * rate) + 1);
    const batch: Promise<void>[] = [];
    for (; sent < due; sent++) {
      const id = `${prefix}-${sent}`;
      at.set(id, Date.now());
      batch.push(fleet.request(id));
    }
    await Promise.all(batch);
    await sleep(Math.max(1, Math.min(10, 1000 / rate)));
  }
  return at;
}

const fastPoller = { POLLER_MAX_IN_FLIGHT: "20000", POLLER_STATUS_INTERVAL_MS: "1000" };

/** A fleet as a scenario asks for it; its namespace is the scenario's, and its env goes over `fastPoller`. */
type ScenarioFleet = Omit<FleetSpec, "namespace">;

/** Runs `run` on a simulated fleet started for it in a namespace of its own, and stops the fleet whatever happens. */
function onFleet<T>(
  ctx: Ctx,
  scenario: string,
  spec: ScenarioFleet,
  run: (fleet: BenchFleet) => Promise<T>,
): Promise<T> {
  return withBenchFleet(ctx.b, { ...spec, namespace: ns(scenario), env: { ...fastPoller, ...spec.env } }, run);
}

/**
 * The runner of a scenario that measures one row per variant: for each in turn, a fleet of `fleetFor(variant)`
 * started, measured by `run` (which sees the rows so far) and stopped.
 */
async function perFleet<V, R>(
  ctx: Ctx,
  scenario: string,
  variants: readonly V[],
  fleetFor: (variant: V) => ScenarioFleet,
  run: (fleet: BenchFleet, variant: V, rows: readonly R[]) => Promise<R>,
): Promise<R[]> {
  const rows: R[] = [];
  for (const variant of variants)
    rows.push(await onFleet(ctx, scenario, fleetFor(variant), (fleet) => run(fleet, variant, rows)));
  return rows;
}

/** B1's fleet at saturation, and B2's at a fraction of it: `instances` spawners and pollers, two events a session. */
const saturated = (instances: number): ScenarioFleet => ({
  spawners: instances,
  pollers: instances,
  env: { SPAWNER_MAX_IN_FLIGHT: "256", FLEET_SIM_EVENTS: "2" },
});

// ---------------------------------------------------------------------------------------------
// B1 throughput at saturation, and the BullMQ peer on the same work

/** With --profile, every service of the scenario writes a V8 CPU profile into the profile folder. */
function cpuProfile(ctx: Ctx): { nodeArgs?: string[] } {
  return ctx.profileDir ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${ctx.profileDir}`] } : {};
}

export interface B1Row {
  instances: number;
  sessions: number;
  failed: number;
  sessionsPerSecond: number;
  busMsgsPerSession: number;
  storeOpsPerSession: number;
  /** The store operations per session by command (find, insert, update, findAndModify…). */
  storeOpsByCommandPerSession: Record<string, number>;
  opsPerSecond: number;
  efficiency: number;
  peerSessionsPerSecond?: number;
  ratioToPeer?: number;
}

export type PeerRunner = (
  instances: number,
  sessions: number,
  opts: { createMs: number; events: number; eventMs: number; ratePerSecond?: number },
) => Promise<{ sessionsPerSecond: number; latencies?: Record<string, Spread> }>;

export async function b1(ctx: Ctx, peer: PeerRunner | undefined): Promise<B1Row[]> {
  const n = ctx.quick ? 100 : 1_000;
  // Per-operation baselines only: an insertMany call carries 100 documents, so it is not one operation.
  const slowest = Math.min(ctx.baselines.jsPublish, ctx.baselines.jsConsume, ctx.baselines.findOneAndUpdate);
  return perFleet(
    ctx,
    "b1",
    [1, 2],
    (instances) => ({ ...saturated(instances), ...cpuProfile(ctx) }),
    async (fleet, instances) => {
      ctx.log(`B1 fleet, ${instances} instance(s) per stage: ${n} sessions as fast as they come`);
      const before = await serverCounters(ctx.b);
      const readsBefore = harnessReads.count;
      const t0 = Date.now();
      const at = await flood(fleet, "b1", n);
      const t1 = await waitEnded(fleet, [...at.keys()], 600_000, (e) => ctx.log(`  ${e}/${n} ended`));
      const after = await serverCounters(ctx.b);
      // The harness's own reads of the sessions are no work of the fleet's.
      const ownReads = harnessReads.count - readsBefore;
      after.storeOps -= ownReads;
      after.storeOpsByCommand.find = (after.storeOpsByCommand.find ?? 0) - ownReads;
      const seconds = (t1 - t0) / 1000;
      const failed = await fleet.db.collection("sessions").countDocuments({ status: { $ne: "completed" } });
      const ops = after.busMsgs - before.busMsgs + (after.storeOps - before.storeOps);
      const row: B1Row = {
        instances,
        sessions: n,
        failed,
        sessionsPerSecond: n / seconds,
        busMsgsPerSession: (after.busMsgs - before.busMsgs) / n,
        storeOpsPerSession: (after.storeOps - before.storeOps) / n,
        storeOpsByCommandPerSession: Object.fromEntries(
          Object.entries(after.storeOpsByCommand)
            .map(([c, v]) => [c, round((v - (before.storeOpsByCommand[c] ?? 0)) / n, 2)] as const)
            .filter(([, v]) => v > 0),
        ),
        opsPerSecond: ops / seconds,
        efficiency: ops / seconds / slowest,
      };
      ctx.log(
        `  ${round(row.sessionsPerSecond)} sessions/s, ${round(row.busMsgsPerSession)} bus msgs + ${round(row.storeOpsPerSession)} store ops per session, efficiency ${round(row.efficiency, 2)}`,
      );
      ctx.log(
        `  store ops per session by command: ${Object.entries(row.storeOpsByCommandPerSession)
          .map(([c, v]) => `${c} ${v}`)
          .join(", ")}`,
      );
      if (peer) {
        ctx.log(`B1 BullMQ peer, ${instances} instance(s) per stage: ${n} sessions`);
        const p = await peer(instances, n, { createMs: 0, events: 2, eventMs: 0 });
        row.peerSessionsPerSecond = p.sessionsPerSecond;
        row.ratioToPeer = row.sessionsPerSecond / p.sessionsPerSecond;
        ctx.log(`  peer ${round(p.sessionsPerSecond)} sessions/s; fleet/peer ${round(row.ratioToPeer, 2)}`);
      }
      return row;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// B2 added latency per hop at a fraction of B1's maximum

export interface B2Row {
  loadFraction: number;
  offeredPerSecond: number;
  sessions: number;
  requestToClaimed: Spread;
  claimedToRunning: Spread;
  idleToCompleted: Spread;
  endToEndMinusSimulated: Spread;
  peer?: Record<string, Spread>;
}

export async function b2(ctx: Ctx, maxRate: number, instances: number, peer: PeerRunner | undefined): Promise<B2Row[]> {
  const fractions = ctx.quick ? [0.1, 0.5] : [0.1, 0.25, 0.5, 0.75];
  const seconds = ctx.quick ? 6 : 20;
  return perFleet(
    ctx,
    "b2",
    fractions,
    () => ({ ...saturated(instances), ...cpuProfile(ctx) }),
    async (fleet, f) => {
      const rate = Math.max(1, maxRate * f);
      ctx.log(`B2 ${Math.round(f * 100)}% of B1's maximum: ${round(rate)} sessions/s for ${seconds} s`);
      const at = await paced(fleet, "b2", rate, seconds);
      await waitEnded(fleet, [...at.keys()], 300_000, (e) => ctx.log(`  ${e}/${at.size} ended`));
      const times = (await sessionTimes(fleet, at)).filter((t) => t.status === "completed");
      const row: B2Row = {
        loadFraction: f,
        offeredPerSecond: rate,
        sessions: times.length,
        requestToClaimed: spread(times.map((t) => t.claimedAt - t.requestedAt)),
        claimedToRunning: spread(times.map((t) => t.runningAt - t.claimedAt)),
        idleToCompleted: spread(times.map((t) => t.endedAt - t.idleAt)),
        endToEndMinusSimulated: spread(times.map((t) => t.endedAt - t.requestedAt - (t.idleAt - t.promptedAt))),
      };
      ctx.log(
        `  e2e p50 ${row.endToEndMinusSimulated.p50} ms, p99 ${row.endToEndMinusSimulated.p99} ms over ${row.sessions} sessions`,
      );
      if (peer) {
        const p = await peer(instances, Math.round(rate * seconds), {
          createMs: 0,
          events: 2,
          eventMs: 0,
          ratePerSecond: rate,
        });
        if (p.latencies) row.peer = p.latencies;
        ctx.log(
          `  peer e2e p50 ${p.latencies?.endToEndMinusSimulated?.p50} ms, p99 ${p.latencies?.endToEndMinusSimulated?.p99} ms`,
        );
      }
      return row;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// B3 log pipeline

export interface B3Row {
  sessions: number;
  viewersPerSession: number;
  lines: number;
  ingestLinesPerSecond: number;
  storedLinesPerSecond: number;
  /** Lines/s the simulated agents emitted over the same window: ingest cannot exceed it. */
  offeredLinesPerSecond: number;
  ingestVsRawPublish: number;
  storedVsRawInsertMany: number;
  viewerLatency: Spread;
  eventToViewer: Spread;
  /** The agent emitting the event -> its line in the store (when a sampled count first covered it); absent in older runs. */
  eventToStored?: Spread;
  missing: number;
  /** Lines a viewer received more than once (same session and seq); absent in older runs. */
  doubled?: number;
}

export async function b3(ctx: Ctx): Promise<B3Row[]> {
  const events = 100;
  const eventMs = 1;
  const cases = ctx.quick
    ? [
        [30, 1],
        [30, 5],
      ]
    : [
        [100, 1],
        [100, 5],
        [1_000, 1],
        [1_000, 5],
      ];
  const metricsPort = await freePort();
  return perFleet(
    ctx,
    "b3",
    cases as Array<[number, number]>,
    () => ({
      spawners: 1,
      pollers: 1,
      env: {
        POLLER_METRICS_PORT: String(metricsPort),
        SPAWNER_MAX_IN_FLIGHT: "256",
        FLEET_SIM_EVENTS: String(events),
        FLEET_SIM_EVENT_MS: String(eventMs),
      },
      ...cpuProfile(ctx),
    }),
    async (fleet, [sessions, viewers]) => {
      ctx.log(`B3 ${sessions} sessions × ${events} tool events (2 lines each), ${viewers} live viewer(s) per session`);
      const viewerLatency: number[] = [];
      const arrivals: Array<{ id: string; seq: number; line: string; arrived: number }> = [];
      let delivered = 0;
      let first = Number.POSITIVE_INFINITY;
      let last = 0;
      const subs = [];
      for (let s = 0; s < sessions; s++) {
        const id = `b3-${s}`;
        for (let v = 0; v < viewers; v++) {
          subs.push(
            ctx.b.nc.subscribe(subjectFor(fleet.namespace, "log", id), {
              callback: (_err, m) => {
                const now = Date.now();
                // A message carries the consecutive lines of one write: each counts as a line delivered.
                const body = m.json<SessionLog>();
                first = Math.min(first, now);
                last = Math.max(last, now);
                body.lines.forEach((l, i) => {
                  delivered++;
                  if (v === 0) arrivals.push({ id, seq: body.seq + i, line: l.line, arrived: now });
                  if (delivered % 7 === 0) viewerLatency.push(now - body.at);
                });
              },
            }),
          );
        }
      }
      await ctx.b.nc.flush();
      const stored = sampleArchived([metricsPort]);
      const at = await flood(fleet, "b3", sessions);
      await waitEnded(fleet, [...at.keys()], 600_000, (e) => ctx.log(`  ${e}/${sessions} ended`));
      await sleep(500);
      // Lines may reach the store after their session ended: wait (bounded) until it holds as many as a viewer saw.
      const seen = new Set(arrivals.map((a) => `${a.id}:${a.seq}`)).size;
      for (const end = Date.now() + 120_000; stored.count < seen && Date.now() < end; ) await sleep(100);
      await sleep(500);
      await stored.stop();
      for (const s of subs) s.unsubscribe();
      const times = new Map((await sessionTimes(fleet, at)).map((t) => [t.id, t]));
      const emittedAt = (a: { id: string; line: string }): number | undefined => {
        const step = /simulated step (\d+)/.exec(a.line);
        const t = times.get(a.id);
        return step && t && a.line.startsWith("✓") ? t.promptedAt + Number(step[1]) * eventMs : undefined;
      };
      const eventToViewer: number[] = [];
      const eventToStored: number[] = [];
      // The k-th line to arrive is taken as the k-th stored: lines are stored in about the order they are published.
      const byArrival = [...arrivals].sort((x, y) => x.arrived - y.arrived);
      byArrival.forEach((a, k) => {
        const emitted = emittedAt(a);
        if (emitted === undefined) return;
        eventToViewer.push(a.arrived - emitted);
        const storedAt = stored.reached(k + 1);
        if (Number.isFinite(storedAt)) eventToStored.push(storedAt - emitted);
      });
      const lines = await fleet.db.collection("session_logs").countDocuments({});
      const allTimes = [...times.values()];
      const emitFrom = minOf(allTimes.map((t) => t.promptedAt));
      const emitTo = maxOf(allTimes.map((t) => t.idleAt));
      const offered = (allTimes.length * events * 2) / Math.max(0.001, (emitTo - emitFrom) / 1000);
      const ingest = arrivals.length / Math.max(0.001, (last - first) / 1000);
      const window = stored.window();
      const storedRate = lines / Math.max(0.001, (window.full - window.first) / 1000);
      const row: B3Row = {
        sessions,
        viewersPerSession: viewers,
        lines,
        ingestLinesPerSecond: ingest,
        storedLinesPerSecond: storedRate,
        offeredLinesPerSecond: offered,
        ingestVsRawPublish: ingest / ctx.baselines.jsPublish,
        storedVsRawInsertMany: storedRate / ctx.baselines.insertManyDocs,
        viewerLatency: spread(viewerLatency),
        eventToViewer: spread(eventToViewer),
        eventToStored: spread(eventToStored),
        missing: lines * viewers - delivered,
        doubled: arrivals.length - seen,
      };
      ctx.log(
        `  ${lines} lines (agents emitted ${round(offered)} lines/s): ${round(ingest)} lines/s to viewers, ${round(storedRate)} lines/s stored, viewer p99 ${row.viewerLatency.p99} ms, event→viewer p99 ${row.eventToViewer.p99} ms, event→stored p99 ${spread(eventToStored).p99} ms, missing ${row.missing}, doubled ${row.doubled}`,
      );
      return row;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// B4 completion detection, with the agent's event stream and with it cut

export interface B4Row {
  eventStream: "on" | "off";
  statusIntervalMs: number;
  sessions: number;
  idleToCompleted: Spread;
  withinTwiceInterval: number;
}

export async function b4(ctx: Ctx): Promise<B4Row[]> {
  const n = ctx.quick ? 30 : 200;
  const interval = 1_000;
  return perFleet(
    ctx,
    "b4",
    ["on", "off"] as const,
    (stream) => ({
      spawners: 1,
      pollers: 1,
      env: {
        POLLER_STATUS_INTERVAL_MS: String(interval),
        FLEET_SIM_EVENTS: "3",
        FLEET_SIM_EVENT_MS: "300",
        FLEET_SIM_EVENT_STREAM: stream,
      },
    }),
    async (fleet, stream) => {
      ctx.log(
        `B4 completion detection, event stream ${stream}, status check every ${interval} ms: ${n} sessions at 10/s`,
      );
      const at = await paced(fleet, "b4", 10, n / 10);
      await waitEnded(fleet, [...at.keys()], 120_000, (e) => ctx.log(`  ${e}/${at.size} ended`));
      const times = (await sessionTimes(fleet, at)).filter((t) => t.status === "completed");
      const lag = times.map((t) => t.endedAt - t.idleAt);
      const row: B4Row = {
        eventStream: stream,
        statusIntervalMs: interval,
        sessions: times.length,
        idleToCompleted: spread(lag),
        withinTwiceInterval: lag.filter((l) => l <= 2 * interval).length / Math.max(1, lag.length),
      };
      ctx.log(`  idle → completed stored: p50 ${row.idleToCompleted.p50} ms, p99 ${row.idleToCompleted.p99} ms`);
      return row;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// B5 poller memory per watched session, and over a soak

export interface B5Row {
  sessions: number;
  /** Mean resident memory over the measuring window, and the idle poller's. */
  watchingRssMb: number;
  idleRssMb: number;
  /** (watching - idle) / sessions: includes what the heap kept from setting the watches up. */
  bytesPerSession: number;
  /** Growth from the previous size / the sessions added: what one more watched session costs. */
  marginalBytesPerSession?: number;
  /** JS heap per session: the lowest heap-used sample of the window, an upper bound on the live heap. */
  heapBytesPerSession: number;
}

export interface B5Result {
  rows: B5Row[];
  soakSeconds: number;
  soakSamplesMb: number[];
  growthAfterWarmupPct: number;
  /** Poller CPU over the soak per watched session and minute (agents silent: the safety net's cost). */
  cpuMsPerWatchedMinute: number;
}

/**
 * One poller watches more and more sessions whose simulated agents stay busy (quick: 200 then 500;
 * full: 1,000 then 10,000); after each step its memory is sampled, then the largest step soaks.
 */
export async function b5(ctx: Ctx): Promise<B5Result> {
  const sizes = ctx.quick ? [200, 500] : [1_000, 10_000];
  const soak = ctx.quick ? 20 : 600;
  const metricsPort = await freePort();
  return onFleet(
    ctx,
    "b5",
    {
      spawners: 1,
      pollers: 1,
      // Agents that stay busy for an hour: the poller watches every session for the whole soak.
      env: {
        // The safety-net checks cost store reads and agent calls per session but hardly memory: at
        // these intervals 10,000 watches stay within what the store serves while more are set up.
        POLLER_STATUS_INTERVAL_MS: "30000",
        POLLER_STORE_CHECK_MS: "300000",
        // Silent agents for the whole run: past the default 3 minutes the poller rightly fails them as stalled.
        POLLER_QUIET_MS: "3600000",
        POLLER_METRICS_PORT: String(metricsPort),
        SPAWNER_MAX_IN_FLIGHT: "256",
        FLEET_SIM_EVENTS: "2",
        FLEET_SIM_EVENT_MS: "3600000",
      },
      // With --profile the poller writes heap snapshots on a signal (see heapSnapshot).
      ...(ctx.profileDir
        ? { pollerNodeArgs: ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${ctx.profileDir}`] }
        : {}),
    },
    async (fleet) => {
      const [poller] = fleet.pids("poller") as [number];
      /** rss and heap used every second: the median rss, and the lowest heap (nearest to what is live). */
      const sample = async (
        seconds: number,
        onSample?: (rss: number) => void,
      ): Promise<{ rss: number; heap: number; samples: number[] }> => {
        const rss: number[] = [];
        const heap: number[] = [];
        for (const end = Date.now() + seconds * 1000; Date.now() < end; await sleep(1_000)) {
          rss.push(rssBytes(poller));
          heap.push(await heapUsed(metricsPort));
          onSample?.(rss.length);
        }
        return { rss: percentile(rss, 50), heap: minOf(heap), samples: rss };
      };
      await sleep(1_000);
      const idle = await sample(5);
      ctx.log(
        `B5 poller memory: watching ${sizes.join(" then ")} sessions (idle poller ${round(idle.rss / 2 ** 20)} MB rss, ${round(idle.heap / 2 ** 20)} MB heap)`,
      );
      if (ctx.profileDir) {
        ctx.log(`  heap snapshot of the idle poller: ${await heapSnapshot(poller, ctx.profileDir)}`);
        ctx.log(
          "  (with --profile the snapshots' own memory stays in the poller's rss: compare the snapshots, not these figures)",
        );
      }
      const sessions = fleet.db.collection<{ _id: string; status: string }>("sessions");
      const rows: B5Row[] = [];
      let previous = { n: 0, rss: idle.rss };
      const watched: string[] = [];
      let soakSamples: number[] = [];
      let cpuMsPerWatchedMinute = Number.NaN;
      for (const n of sizes) {
        // The longest deadline a session may have: the default (10 minutes) would end them mid-soak.
        const ids = [
          ...(await flood(fleet, `b5-${n}`, n - previous.n, { config: { timeoutMs: LIMITS.timeoutMsMax } })).keys(),
        ];
        watched.push(...ids);
        // Every session running (read by id, oldest first: no collection scans while the poller works).
        let ready = 0;
        await until(
          `${n} sessions running`,
          async () => {
            while (
              ready < ids.length &&
              (await sessions.findOne({ _id: ids[ready] as string }, { projection: { status: 1 } }))?.status ===
                "running"
            )
              ready++;
            return ready >= ids.length;
          },
          ctx.quick ? 240_000 : 3_600_000,
          200,
        );
        // Settle: every watch at its steady state, and the heap the setup burst grew given back (V8
        // shrinks it once allocation slows; sampled straight away, rss was up to 70 MB higher).
        await sleep(ctx.quick ? 10_000 : 30_000);
        // The largest size is measured over the soak itself.
        const last = n === sizes.at(-1);
        const cpu0 = cpuSeconds(poller);
        const at = await sample(last ? soak : ctx.quick ? 5 : 30, (i) => {
          if (last && i % 30 === 1) ctx.log(`  soak: rss ${round(rssBytes(poller) / 2 ** 20)} MB`);
        });
        if (last) {
          soakSamples = at.samples;
          // What watching costs while nothing happens: status checks, store checks, bus heartbeats.
          cpuMsPerWatchedMinute = ((cpuSeconds(poller) - cpu0) * 1000) / (n * (soak / 60));
        }
        const row: B5Row = {
          sessions: n,
          watchingRssMb: at.rss / 2 ** 20,
          idleRssMb: idle.rss / 2 ** 20,
          bytesPerSession: (at.rss - idle.rss) / n,
          heapBytesPerSession: (at.heap - idle.heap) / n,
          ...(previous.n ? { marginalBytesPerSession: (at.rss - previous.rss) / (n - previous.n) } : {}),
        };
        ctx.log(
          `  ${n} watched: ${round(row.watchingRssMb)} MB rss, ${round(row.bytesPerSession / 1024)} KB rss and at most ${round(row.heapBytesPerSession / 1024)} KB heap per session` +
            (row.marginalBytesPerSession !== undefined
              ? `; ${round(row.marginalBytesPerSession / 1024)} KB rss per session added`
              : ""),
        );
        rows.push(row);
        previous = { n, rss: at.rss };
      }
      // Every session must still be watched at the end, or the soak measured fewer watches than it says.
      let notRunning = 0;
      for (const id of watched)
        if ((await sessions.findOne({ _id: id }, { projection: { status: 1 } }))?.status !== "running") notRunning++;
      if (notRunning > 0)
        throw new Error(
          `B5: ${notRunning} of ${watched.length} sessions were no longer running at the end of the soak`,
        );
      const mean = (xs: number[]): number => xs.reduce((a, v) => a + v, 0) / Math.max(1, xs.length);
      const half = Math.floor(soakSamples.length / 2);
      const growth =
        ((mean(soakSamples.slice(half)) - mean(soakSamples.slice(0, half))) / mean(soakSamples.slice(0, half))) * 100;
      ctx.log(
        `  soak ${soak} s at ${previous.n} watched: second half vs first half ${round(growth, 2)}%; poller CPU ${round(cpuMsPerWatchedMinute, 2)} ms per watched session-minute`,
      );
      if (ctx.profileDir)
        ctx.log(`  heap snapshot of the watching poller: ${await heapSnapshot(poller, ctx.profileDir)}`);
      return {
        rows,
        soakSeconds: soak,
        soakSamplesMb: soakSamples.map((v) => round(v / 2 ** 20)),
        growthAfterWarmupPct: growth,
        cpuMsPerWatchedMinute,
      };
    },
  );
}

/** The poller's JS heap in use, from its Prometheus metrics (prom-client's default gauges). */
async function heapUsed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error("the poller's metrics have no nodejs_heap_size_used_bytes");
  return Number(m[1]);
}

/** Signals a process started with --heapsnapshot-signal=SIGUSR2 and waits for its snapshot file. */
async function heapSnapshot(pid: number, dir: string): Promise<string> {
  const mine = (): string[] =>
    existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot") && f.includes(`.${pid}.`)) : [];
  mkdirSync(dir, { recursive: true });
  const before = new Set(mine());
  process.kill(pid, "SIGUSR2");
  let file = "";
  let size = -1;
  await until(
    "the heap snapshot",
    async () => {
      file = mine().find((f) => !before.has(f)) ?? "";
      if (!file) return false;
      // Written in one go by the process: done when its size stops changing.
      const now = statSync(join(dir, file)).size;
      const done = now > 0 && now === size;
      size = now;
      return done;
    },
    120_000,
    1_000,
  );
  return join(dir, file);
}

// ---------------------------------------------------------------------------------------------
// B6 the real agent: local sandboxes and OpenCode

export interface B6Result {
  sessions: number;
  setupMs: Record<string, number>;
  requestToFirstToolMs: number;
  endToEndMs: number;
  fleetCpuSecondsPerSession: number;
  fleetShareOfEndToEnd: number;
}

export async function b6(ctx: Ctx): Promise<B6Result> {
  const n = ctx.quick ? 1 : 3;
  const logger = createLogger({ name: "bench-model", level: "silent" });
  const model = await startScriptedModel({
    port: 0,
    scenario: SCENARIOS.demo as ScenarioInput,
    byModel: SCENARIOS,
    logger,
  });
  const namespace = ns("b6");
  const common = { ...realAgentServices(ctx.b, namespace, model.url), ...cpuProfile(ctx) };
  const services = [await startService("spawner", common, 0), await startService("poller", common, 0)];
  const db = ctx.b.mongo.db(namespace);
  try {
    ctx.log(
      `B6 real agent: ${n} session(s) after a warm-up one, with local sandboxes and OpenCode on the scripted model`,
    );
    const rows: Array<{ setup: Record<string, number>; firstTool: number; e2e: number; cpu: number }> = [];
    // Session 0 warms the services up (module loading, JIT, schema compilation) and is not counted:
    // the figures are those of a fleet that has run sessions before.
    for (let i = 0; i <= n; i++) {
      const id = `b6-${i}`;
      const cpu0 = services.reduce((a, s) => a + cpuSeconds(s.process.pid), 0);
      const requestedAt = Date.now();
      await ctx.b.js.publish(
        subjectFor(namespace, "requested"),
        JSON.stringify({
          v: 1,
          sessionId: id,
          projectId: "bench",
          prompt: "demo",
          requestedAt,
          config: { model: "demo" },
        }),
        { msgID: `requested:${id}` },
      );
      const doc = await until(
        `session ${id} to end`,
        async () => {
          const d = await db
            .collection<{
              _id: string;
              status: string;
              completedAt?: number;
              metrics?: { setup?: Record<string, number> };
            }>("sessions")
            .findOne({ _id: id });
          return d && ["completed", "failed"].includes(d.status) ? d : undefined;
        },
        180_000,
        100,
      );
      const cpu1 = services.reduce((a, s) => a + cpuSeconds(s.process.pid), 0);
      ctx.log(
        `  CPU by service: ${services.map((s) => `${s.name} ${round(cpuSeconds(s.process.pid), 2)} s`).join(", ")} (since start)`,
      );
      const firstTool = await db
        .collection<{ at: number; kind: string }>("session_logs")
        .find({ sessionId: id, kind: "tool" })
        .sort({ seq: 1 })
        .limit(1)
        .next();
      if (doc.status !== "completed") throw new Error(`B6 session ${id} ${doc.status}`);
      const row = {
        setup: doc.metrics?.setup ?? {},
        firstTool: (firstTool?.at ?? Number.NaN) - requestedAt,
        e2e: (doc.completedAt ?? Date.now()) - requestedAt,
        cpu: cpu1 - cpu0,
      };
      if (i > 0) rows.push(row);
      ctx.log(
        `  ${id}${i === 0 ? " (warm-up, not counted)" : ""}: first tool call after ${row.firstTool} ms, end to end ${row.e2e} ms, fleet CPU ${round(row.cpu, 2)} s`,
      );
    }
    const med = (xs: number[]) => percentile(xs, 50);
    const keys = Object.keys(rows[0]?.setup ?? {});
    return {
      sessions: n,
      setupMs: Object.fromEntries(keys.map((k) => [k, med(rows.map((r) => r.setup[k] ?? 0))])),
      requestToFirstToolMs: med(rows.map((r) => r.firstTool)),
      endToEndMs: med(rows.map((r) => r.e2e)),
      fleetCpuSecondsPerSession: med(rows.map((r) => r.cpu)),
      fleetShareOfEndToEnd: med(rows.map((r) => r.cpu / (r.e2e / 1000))),
    };
  } finally {
    await Promise.all(services.map((s) => s.process.stop()));
    await model.close();
    await db.dropDatabase().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// B7 scale-out of spawners with a 200 ms create

export interface B7Row {
  spawners: number;
  sessions: number;
  sessionsPerSecond: number;
  speedup: number;
  /** On a cluster: the node each spawner was pinned to, in order. */
  nodes?: number[];
}

/**
 * `spread`: on a cluster, spawner i connects to node i mod N only (the pollers and the requests to
 * all), so the spawners' bus traffic is spread over the nodes.
 */
export async function b7(ctx: Ctx, options: { spread?: boolean } = {}): Promise<B7Row[]> {
  const servers = natsServers(ctx.b.infra.natsUrl);
  const nodeOf = (i: number) => i % servers.length;
  const pin = options.spread && servers.length > 1;
  const n = ctx.quick ? 40 : 240;
  // One create at a time per spawner, so one instance stays well under what the store can take and
  // the figure shows the spawners' own scale-out.
  const perInstance = 1;
  return perFleet(
    ctx,
    "b7",
    [1, 2, 4],
    (spawners) => ({
      spawners,
      pollers: 1,
      env: {
        SPAWNER_MAX_IN_FLIGHT: String(perInstance),
        FLEET_SIM_CREATE_MS: "200",
        FLEET_SIM_EVENTS: "1",
      },
      ...(pin
        ? {
            natsUrlOf: (name: ServiceName, i: number) =>
              name === "spawner" ? (servers[nodeOf(i)] as string) : ctx.b.infra.natsUrl,
          }
        : {}),
    }),
    async (fleet, spawners, rows) => {
      ctx.log(`B7 ${spawners} spawner(s), ${perInstance} creates at a time each, 200 ms per create: ${n} sessions`);
      const t0 = Date.now();
      const at = await flood(fleet, "b7", n);
      const t1 = await waitEnded(fleet, [...at.keys()], 600_000, (e) => ctx.log(`  ${e}/${n} ended`));
      const rate = n / ((t1 - t0) / 1000);
      const row: B7Row = {
        spawners,
        sessions: n,
        sessionsPerSecond: rate,
        speedup: rate / (rows[0]?.sessionsPerSecond ?? rate),
        ...(pin ? { nodes: Array.from({ length: spawners }, (_, i) => nodeOf(i)) } : {}),
      };
      ctx.log(`  ${round(rate)} sessions/s (${round(row.speedup, 2)}× one spawner)`);
      return row;
    },
  );
}

// ---------------------------------------------------------------------------------------------
// B8 poller failover: a poller killed with SIGKILL while it watches sessions

export interface B8Row {
  /** The watch consumer's ack wait (FLEET_WATCH_ACK_WAIT_MS). */
  watchAckWaitMs: number;
  /** Sessions the killed poller watched. */
  sessions: number;
  /** From the kill to the other poller watching each of them again (its "watching session" line). */
  reattach: Spread;
  /** Of them, those not watched again within the run's bound. */
  notReattached: number;
  /** Sessions of the run that did not complete. */
  notCompleted: number;
}

/** A poller's "watching session" lines: session id -> delivery -> when (its own clock, ISO time). */
function watchLines(file: string): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes('"msg":"watching session"')) continue;
    const l = JSON.parse(line) as { sessionId: string; delivery: number; time: string };
    const byDelivery = out.get(l.sessionId) ?? new Map<number, number>();
    byDelivery.set(l.delivery, Date.parse(l.time));
    out.set(l.sessionId, byDelivery);
  }
  return out;
}

export async function b8(ctx: Ctx): Promise<B8Row[]> {
  const n = ctx.quick ? 20 : 100;
  // The default, and the ack wait every message had before watches were held with confirmed heartbeats.
  return perFleet(
    ctx,
    "b8",
    [6_000, 30_000],
    (watchAckWaitMs) => ({
      spawners: 1,
      pollers: 2,
      // Sessions that outlive the kill by far: 60 events, one a second.
      env: {
        LOG_LEVEL: "info",
        SPAWNER_MAX_IN_FLIGHT: "64",
        FLEET_SIM_EVENTS: "60",
        FLEET_SIM_EVENT_MS: "1000",
        FLEET_WATCH_ACK_WAIT_MS: String(watchAckWaitMs),
      },
    }),
    async (fleet, watchAckWaitMs) => {
      ctx.log(
        `B8 ack wait ${watchAckWaitMs} ms: ${n} sessions of about 60 s on 2 pollers, then one poller killed (SIGKILL)`,
      );
      const at = await flood(fleet, "b8", n);
      const pollers = fleet.services.filter((s) => s.name === "poller");
      const watchedBy = (): Array<Map<string, Map<number, number>>> =>
        pollers.map((p) => watchLines(p.process.logFile));
      await until("every session watched", async () => watchedBy().reduce((sum, w) => sum + w.size, 0) >= n, 120_000);
      const [first, second] = pollers.map((p, i) => ({ poller: p, watched: watchedBy()[i] ?? new Map() }));
      if (!first || !second) throw new Error("B8 needs two pollers");
      const [victim, survivor] = first.watched.size >= second.watched.size ? [first, second] : [second, first];
      const theirs = [...victim.watched.keys()];
      const killedAt = Date.now();
      process.kill(victim.poller.process.pid, "SIGKILL");
      const bound = watchAckWaitMs + 30_000;
      await until(
        "the killed poller's sessions watched again",
        async () => theirs.every((id) => (watchLines(survivor.poller.process.logFile).get(id)?.size ?? 0) > 0),
        bound,
      ).catch(() => undefined);
      const again = watchLines(survivor.poller.process.logFile);
      const delays = theirs.flatMap((id) => {
        const t = Math.min(...(again.get(id)?.values() ?? []));
        return Number.isFinite(t) ? [t - killedAt] : [];
      });
      await waitEnded(fleet, [...at.keys()], 180_000, (e) => ctx.log(`  ${e}/${n} ended`));
      const completed = await fleet.db.collection("sessions").countDocuments({ status: "completed" });
      const r: B8Row = {
        watchAckWaitMs,
        sessions: theirs.length,
        reattach: spread(delays),
        notReattached: theirs.length - delays.length,
        notCompleted: n - completed,
      };
      ctx.log(
        `  ${r.sessions} sessions re-attached after p50 ${round(r.reattach.p50)} ms, max ${round(r.reattach.max)} ms; ${r.notReattached} not re-attached, ${r.notCompleted} not completed`,
      );
      return r;
    },
  );
}
