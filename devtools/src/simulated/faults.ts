import { FleetError } from "@fleet/shared/errors";
import type { SimCreateFault } from "@fleet/shared/config";
import type { SandboxMetadata } from "@fleet/shared/sandbox";

/**
 * Provider faults on demand (FLEET_SIM_CREATE_FAULTS, parsed with the service's config), so tests
 * can watch the real services meet what a cloud provider does: a 429 while too many sandboxes are
 * being made, a 5xx that passes, a request that can never work.
 */

/** The error the provider answers a create with, as the e2b adapter would map the cloud's answer. */
export function createFault(faults: readonly SimCreateFault[], metadata: SandboxMetadata): FleetError | undefined {
  // A warm-pool sandbox belongs to no project or attempt yet: the faults are per project.
  if (!("attempt" in metadata)) return undefined;
  const attempt = Number(metadata.attempt);
  const fault = faults.find((f) => f.projectId === metadata.projectId && attempt <= f.attempts);
  if (!fault) return undefined;
  const at = `project ${metadata.projectId}, attempt ${attempt}`;
  switch (fault.kind) {
    case "rate_limit":
      return new FleetError("rate_limited", `simulated provider: 429 too many sandboxes being created (${at})`, {
        retryable: true,
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
