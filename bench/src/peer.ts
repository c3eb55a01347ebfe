import { join } from "node:path";
import { startRedis } from "../peer/redis.js";
import { runPeerLoad } from "../peer/run.js";
import type { BenchInfra } from "./env.js";
import type { PeerRunner } from "./scenarios.js";
import { spread } from "./util.js";

/** The BullMQ peer on a Redis of its own, on the same store and simulated provider as the fleet. */
export async function startPeer(b: BenchInfra, dataDir: string): Promise<{ run: PeerRunner; stop(): Promise<void> }> {
  const redis = await startRedis(join(dataDir, "redis"));
  let runs = 0;
  const run: PeerRunner = async (instances, sessions, opts) => {
    const name = `bench_peer_${process.pid.toString(36)}_${runs++}`;
    const r = await runPeerLoad({
      redisUrl: redis.url,
      mongoUri: b.infra.mongoUri,
      database: name,
      simDir: join(dataDir, name, "sim"),
      dataDir: join(dataDir, name),
      instancesPerStage: instances,
      sessions,
      createMs: opts.createMs,
      events: opts.events,
      eventMs: opts.eventMs,
      ...(opts.ratePerSecond ? { ratePerSecond: opts.ratePerSecond } : {}),
    });
    await b.mongo
      .db(name)
      .dropDatabase()
      .catch(() => undefined);
    const t = r.perSession;
    return {
      sessionsPerSecond: r.sessions / ((r.endedAt - r.startedAt) / 1000),
      latencies: {
        requestToClaimed: spread(t.map((s) => s.claimedAt - s.requestedAt)),
        claimedToRunning: spread(t.map((s) => s.runningAt - s.claimedAt)),
        idleToCompleted: spread(t.map((s) => s.completedAt - s.idleAt)),
        endToEndMinusSimulated: spread(t.map((s) => s.completedAt - s.requestedAt)),
      },
    };
  };
  return { run, stop: () => redis.stop() };
}
