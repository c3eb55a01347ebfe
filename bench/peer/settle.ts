/**
 * The BullMQ peer's last word on a job that ran out of attempts (benchmark peer): the session
 * ends `failed` and its sandbox goes, as the fleet does on a message's final delivery, so a load
 * run never waits for a session nobody works on any more.
 */
import type { Job } from "bullmq";
import { z } from "zod";
import { errorMessage } from "@fleet/shared";
import type { PeerDeps } from "./spawn.js";

/** What a job of either queue says about its session; the rest of its data does not matter here. */
const SessionOf = z.object({
  sessionId: z.string().min(1),
  sandboxId: z.string().min(1).optional(),
  projectId: z.string().min(1).optional(),
  prompt: z.string().optional(),
  requestedAt: z.number().optional(),
});
const TRIES = 5;

export async function settleFailedJob(deps: PeerDeps, job: Job, err: Error): Promise<void> {
  const data = SessionOf.safeParse(job.data);
  if (!data.success) return;
  const { sessionId, projectId = "unknown", prompt = "", requestedAt = job.timestamp } = data.data;
  const error = {
    code: job.queueName,
    message: `gave up after ${job.attemptsMade} attempt(s): ${err.message}`.slice(0, 2_000),
  };
  for (let tries = 1; ; tries++) {
    try {
      // Filters name the id alone (see spawn.ts). An ended document stays as it is; upserted, as
      // the last attempt may have failed before the document existed.
      const doc = await deps.sessions.findOne({ _id: sessionId }, { projection: { status: 1 } });
      if (doc?.status === "completed" || doc?.status === "failed") break;
      await deps.sessions.updateOne(
        { _id: sessionId },
        {
          $set: { status: "failed", completedAt: Date.now(), error },
          $setOnInsert: { projectId, prompt, attempt: 0, requestedAt },
        },
        { upsert: true },
      );
      break;
    } catch (e) {
      if (tries >= TRIES) {
        deps.logger.error({ sessionId, err: errorMessage(e) }, "could not record the failed session");
        return;
      }
      await new Promise((r) => setTimeout(r, 200 * tries));
    }
  }
  const doc = await deps.sessions.findOne({ _id: sessionId }, { projection: { sandboxId: 1 } });
  for (const id of new Set([doc?.sandboxId, data.data.sandboxId])) if (id) await deps.provider.kill(id);
}
