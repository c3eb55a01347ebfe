/**
 * The BullMQ peer's spawn stage (benchmark peer): a `peer-requested` job -> the session document,
 * a simulated sandbox, the simulated agent prompted, the document `running`, a `peer-running` job.
 * What the fleet's spawner does for the same session, less what the simulated provider makes a
 * no-op (file restore, agent start, health polling) and the fleet's extras (admission, cards).
 */
import { UnrecoverableError, type Job, type Queue } from "bullmq";
import type { Collection } from "mongodb";
import { z } from "zod";
import { agentPassword, type AgentRuntime, type Logger, type SandboxProvider } from "@fleet/shared";
import { JOB_OPTIONS, RequestedJob, type PeerLogDoc, type PeerSessionDoc, type RunningJob } from "./queues.js";

export interface PeerDeps {
  sessions: Collection<PeerSessionDoc>;
  logs: Collection<PeerLogDoc>;
  provider: SandboxProvider;
  runtime: AgentRuntime;
  agentSecret: string;
  logger: Logger;
}

/** The simulated sandbox's own hard limit, a backstop like the fleet's deadline + 60 s. */
const SANDBOX_TIMEOUT_MS = 3_600_000;

/** Job data from Redis is outside input: a malformed job fails at once, without retries. */
export function parseJob<S extends z.ZodType>(schema: S, job: Job): z.infer<S> {
  const parsed = schema.safeParse(job.data);
  if (!parsed.success)
    throw new UnrecoverableError(`malformed ${job.queueName} job ${job.id}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * Store writes name the document by its id alone: FerretDB 1.x (SQLite) pushes only such a filter
 * down to its primary key and scans the collection for any other. No compare-and-set is needed:
 * the job id is the session id and BullMQ's job lock lets one worker at a time run it, the
 * exclusivity the fleet gets from its claim records.
 */
export async function handleRequested(deps: PeerDeps, running: Queue, job: Job): Promise<void> {
  const claimedAt = Date.now();
  const req = parseJob(RequestedJob, job);
  const { sessions } = deps;
  // Idempotent on the session id: a repeated request finds the document it made before.
  const doc = await sessions.findOneAndUpdate(
    { _id: req.sessionId },
    {
      $setOnInsert: {
        projectId: req.projectId,
        prompt: req.prompt,
        status: "pending",
        attempt: 0,
        requestedAt: req.requestedAt,
      },
    },
    { upsert: true, returnDocument: "after" },
  );
  if (!doc) throw new Error(`session ${req.sessionId} was not stored`);
  if (doc.status === "running") return enqueueRunning(running, doc);
  if (doc.status !== "pending") return;
  // A retry replaces the sandbox an earlier attempt left.
  if (doc.sandboxId) await deps.provider.kill(doc.sandboxId);
  const attempt = doc.attempt + 1;
  const sandbox = await deps.provider.create({
    metadata: { fleet: "peer", sessionId: doc._id, projectId: doc.projectId, attempt: String(attempt) },
    envs: {},
    timeoutMs: SANDBOX_TIMEOUT_MS,
  });
  try {
    // Recorded at once, so a later attempt finds it; the claim time goes with it.
    await sessions.updateOne({ _id: doc._id }, { $set: { attempt, claimedAt, sandboxId: sandbox.id } });
    const client = deps.runtime.connect({
      baseUrl: sandbox.url(sandbox.agentPort),
      password: agentPassword(deps.agentSecret, doc._id, attempt),
    });
    const agentSession = await client.createSession(`session ${doc._id}`);
    await client.prompt(agentSession.id, { text: doc.prompt, model: "simulated" });
    const runningAt = Date.now();
    const set = { status: "running", runningAt, agentSessionId: agentSession.id } as const;
    await sessions.updateOne({ _id: doc._id }, { $set: set });
    await enqueueRunning(running, { ...doc, ...set, attempt, sandboxId: sandbox.id });
  } catch (err) {
    // Released for another try (or, on the last one, settled by settleFailedJob).
    await deps.provider.kill(sandbox.id).catch(() => undefined);
    throw err;
  }
}

/** The job id is the session id: BullMQ drops a second add while the first job is still there. */
async function enqueueRunning(running: Queue, doc: PeerSessionDoc): Promise<void> {
  if (!doc.sandboxId || !doc.agentSessionId) return;
  const data: RunningJob = {
    sessionId: doc._id,
    sandboxId: doc.sandboxId,
    agentSessionId: doc.agentSessionId,
    attempt: doc.attempt,
  };
  await running.add("running", data, { ...JOB_OPTIONS, jobId: doc._id });
}
