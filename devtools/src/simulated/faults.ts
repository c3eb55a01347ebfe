import { appendFile, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { FleetError } from "@fleet/shared/errors";
import type { SimCreateFault } from "@fleet/shared/config";
import { ProviderQuotaError, type SandboxMetadata } from "@fleet/shared/sandbox";

/**
 * Provider faults on demand (FLEET_SIM_CREATE_FAULTS, parsed with the service's config), so tests
 * can watch the real services meet what a cloud provider does: a 429 while too many sandboxes are
 * being made, a 5xx that passes, a request that can never work.
 */

const COUNTABLE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Which create of its session this is (1, 2, ...), counted in the state directory so every fleet
 * process agrees: one byte appended per create. A quota answer sends a session back to the queue
 * within the same attempt, so the attempt number alone cannot say how many creates came before.
 */
export async function countCreate(dir: string, sessionId: string): Promise<number> {
  if (!COUNTABLE_ID.test(sessionId)) return 1;
  const folder = join(dir, "creates");
  await mkdir(folder, { recursive: true });
  const file = join(folder, sessionId);
  await appendFile(file, ".");
  return (await stat(file)).size;
}

/**
 * The error the provider answers a create with, as the e2b adapter would map the cloud's answer:
 * the session's creates 1..n fail (`attempts` of the fault); a permanent fault fails every one.
 */
export async function createFault(
  dir: string,
  faults: readonly SimCreateFault[],
  metadata: SandboxMetadata,
  retryAfterMs: number,
): Promise<FleetError | undefined> {
  // A warm-pool sandbox belongs to no project or attempt yet: the faults are per project.
  if (!("attempt" in metadata)) return undefined;
  const fault = faults.find((f) => f.projectId === metadata.projectId);
  if (!fault) return undefined;
  const n = await countCreate(dir, metadata.sessionId);
  if (n > fault.attempts) return undefined;
  const at = `project ${metadata.projectId}, create ${n}`;
  switch (fault.kind) {
    case "rate_limit":
      return new ProviderQuotaError(`simulated provider: 429 too many sandboxes being created (${at})`, {
        kind: "rate",
        retryAfterMs,
      });
    case "transient":
      return new FleetError("sandbox", `simulated provider: 503 service busy (${at})`, { retryable: true });
    case "permanent":
      return new FleetError(
        "sandbox",
        `simulated provider: template not found; creating this sandbox cannot succeed (${at})`,
        { retryable: false },
      );
  }
}
