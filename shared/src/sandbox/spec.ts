import { z } from "zod";
import { FleetError } from "../errors/index.js";
import { checkEnvs } from "./paths.js";
import { SandboxMetadata, type SandboxCreateSpec, type SandboxSummary } from "./port.js";

/** The order `SandboxProvider.list` promises: by start time, ties by id. */
export function oldestFirst(
  a: Pick<SandboxSummary, "id" | "startedAt">,
  b: Pick<SandboxSummary, "id" | "startedAt">,
): number {
  return a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The longest hard timeout a provider accepts for one sandbox. */
export const MAX_SANDBOX_TIMEOUT_MS = 7 * 24 * 3_600_000;

/**
 * What every provider checks before it creates anything: the metadata, that it names the fleet the
 * provider serves (when it serves one), the hard timeout and the environment. Refusals are permanent.
 */
export function checkCreateSpec(
  spec: SandboxCreateSpec,
  fleet: string | undefined,
): { metadata: SandboxMetadata; envs: Record<string, string> } {
  const metadata = SandboxMetadata.safeParse(spec.metadata);
  if (!metadata.success)
    throw new FleetError("sandbox", `invalid sandbox metadata: ${z.prettifyError(metadata.error)}`, {
      retryable: false,
    });
  if (fleet && metadata.data.fleet !== fleet) {
    throw new FleetError(
      "sandbox",
      `sandbox metadata names fleet ${metadata.data.fleet}, this provider serves ${fleet}`,
      { retryable: false },
    );
  }
  if (!Number.isInteger(spec.timeoutMs) || spec.timeoutMs <= 0 || spec.timeoutMs > MAX_SANDBOX_TIMEOUT_MS) {
    throw new FleetError("sandbox", `invalid sandbox timeoutMs ${spec.timeoutMs}`, { retryable: false });
  }
  return { metadata: metadata.data, envs: checkEnvs(spec.envs, "sandbox envs") };
}

/** A hard timeout a provider can be asked for: a positive whole number of ms, within its maximum. */
export function checkTimeout(timeoutMs: number, maxTimeoutMs: number | undefined): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new FleetError("sandbox", `invalid sandbox timeoutMs ${timeoutMs}`, { retryable: false });
  if (maxTimeoutMs !== undefined && timeoutMs > maxTimeoutMs)
    throw new FleetError(
      "sandbox",
      `sandbox timeout ${timeoutMs} ms is past the provider's maximum of ${maxTimeoutMs} ms`,
      { retryable: false },
    );
}
