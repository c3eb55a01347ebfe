/**
 * One process of the BullMQ peer (benchmark peer, not part of the fleet): a BullMQ Worker for one
 * stage, `PEER_ROLE=spawn` (queue peer-requested) or `PEER_ROLE=watch` (queue peer-running), with
 * the official MongoDB driver on the peer's own database and the SIMULATED sandbox provider and
 * agent. Like the fleet, each stage runs as its own process and scales by running more of them.
 * Settings come from the environment (see PeerEnv); it prints READY_LINE once it takes jobs.
 */
import { Queue, Worker, type Job } from "bullmq";
import { MongoClient } from "mongodb";
import { createLogger, errorMessage, loadConfigOrExit } from "@fleet/shared";
import { SimulatedSandboxProvider, simulatedRuntime } from "@fleet/devtools/simulated";
import { PeerEnv, READY_LINE, REQUESTED_QUEUE, RUNNING_QUEUE, peerCollections, redisConnection } from "./queues.js";
import { handleRequested, type PeerDeps } from "./spawn.js";
import { settleFailedJob } from "./settle.js";
import { handleRunning } from "./watch.js";

const SHUTDOWN_MS = 10_000;

async function main(): Promise<void> {
  const env = loadConfigOrExit(PeerEnv, process.env);
  const role = env.PEER_ROLE;
  const logger = createLogger({ name: `peer-${role}`, level: env.PEER_LOG_LEVEL });
  const mongo = await MongoClient.connect(env.PEER_MONGODB_URI, {
    appName: `peer-${role}`,
    serverSelectionTimeoutMS: 10_000,
  });
  const db = mongo.db(env.PEER_DATABASE);
  const deps: PeerDeps = {
    ...peerCollections(db),
    provider: new SimulatedSandboxProvider(
      {
        dir: env.FLEET_SIM_DIR,
        createMs: env.FLEET_SIM_CREATE_MS,
        events: env.FLEET_SIM_EVENTS,
        eventMs: env.FLEET_SIM_EVENT_MS,
        fleet: "peer",
      },
      logger,
    ),
    runtime: simulatedRuntime({ dir: env.FLEET_SIM_DIR }),
    agentSecret: env.PEER_AGENT_SECRET,
    logger,
  };

  const running =
    role === "spawn"
      ? new Queue(RUNNING_QUEUE, { connection: redisConnection(env.PEER_REDIS_URL, "producer") })
      : undefined;
  const processor = running
    ? (job: Job) => handleRequested(deps, running, job)
    : (job: Job) => handleRunning(deps, job);
  const worker = new Worker(role === "spawn" ? REQUESTED_QUEUE : RUNNING_QUEUE, processor, {
    connection: redisConnection(env.PEER_REDIS_URL, "worker"),
    concurrency: env.PEER_CONCURRENCY,
  });
  worker.on("failed", (job, err) => {
    logger.warn(
      { jobId: job?.id, attemptsMade: job?.attemptsMade, final: Boolean(job?.finishedOn), err: err.message },
      "job failed",
    );
    // finishedOn is set only when BullMQ gave up on the job (attempts spent, or unrecoverable).
    if (job?.finishedOn)
      void settleFailedJob(deps, job, err).catch((e: unknown) =>
        logger.error({ jobId: job.id, err: errorMessage(e) }, "settling a failed job failed"),
      );
  });
  worker.on("error", (err) => logger.error({ err: errorMessage(err) }, "worker error"));

  let closing: Promise<void> | undefined;
  const close = (signal: string): Promise<void> =>
    (closing ??= (async () => {
      logger.info({ signal }, "stopping");
      // Stop taking jobs and let the active ones finish; a job still running at the deadline is
      // left to BullMQ's stalled-job check, which hands it to another worker.
      const timer = setTimeout(() => process.exit(1), SHUTDOWN_MS);
      await worker.close();
      await running?.close();
      await mongo.close();
      clearTimeout(timer);
    })());
  for (const signal of ["SIGTERM", "SIGINT"] as const)
    process.once(
      signal,
      () =>
        void close(signal).then(
          () => process.exit(0),
          () => process.exit(1),
        ),
    );

  await worker.waitUntilReady();
  await running?.waitUntilReady();
  process.stdout.write(`${READY_LINE} role=${role} pid=${process.pid} concurrency=${env.PEER_CONCURRENCY}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`peer worker failed to start: ${errorMessage(err)}\n`);
  process.exit(1);
});
