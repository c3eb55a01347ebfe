import { z } from "zod";
import { FleetError } from "../errors/index.js";
import type { SandboxMetadata } from "../sandbox/port.js";

/**
 * Provider faults on demand, so tests can watch the real services meet what a cloud provider does:
 * a 429 while too many sandboxes are being made, a 5xx that passes, a request that can never work.
 * Chosen per project, so one fleet can run faulty and healthy sessions side by side, and counted by
 * the spawner's attempt number (in the sandbox metadata), so every spawner process agrees on it.
 */
export const SimFaultKind = z.enum(["rate_limit", "transient", "permanent"]);
export type SimFaultKind = z.infer<typeof SimFaultKind>;

export const SimCreateFault = z.object({
  projectId: z.string().min(1),
  kind: SimFaultKind,
  /** Attempts 1..n fail; a permanent fault fails every attempt. */
  attempts: z.number().int().positive(),
});
export type SimCreateFault = z.infer<typeof SimCreateFault>;

const ENTRY = /^([A-Za-z0-9_.:-]+)=(rate_limit|transient|permanent)(?::(\d{1,3}))?$/;

/** `p1=rate_limit:2,p2=transient,p3=permanent` (the count defaults to 1) as a fault list. */
export const SimCreateFaults = z
  .string()
  .default("")
  .transform((spec, ctx): SimCreateFault[] => {
    const faults: SimCreateFault[] = [];
    for (const entry of spec.split(",").map((e) => e.trim()).filter(Boolean)) {
      const m = ENTRY.exec(entry);
      if (!m) {
        ctx.addIssue({ code: "custom", message: `'${entry}' is not <project>=<rate_limit|transient|permanent>[:attempts]` });
        return z.NEVER;
      }
      const kind = SimFaultKind.parse(m[2]);
      faults.push({ projectId: m[1] as string, kind, attempts: kind === "permanent" ? Number.MAX_SAFE_INTEGER : Number(m[3] ?? "1") });
    }
    return faults;
  });

/** The error the provider answers a create with, as the e2b adapter would map the cloud's answer. */
export function createFault(faults: readonly SimCreateFault[], metadata: SandboxMetadata): FleetError | undefined {
  const attempt = Number(metadata.attempt);
  const fault = faults.find((f) => f.projectId === metadata.projectId && attempt <= f.attempts);
  if (!fault) return undefined;
  const at = `project ${metadata.projectId}, attempt ${attempt}`;
  switch (fault.kind) {
    case "rate_limit":
      return new FleetError("rate_limited", `simulated provider: 429 too many sandboxes being created (${at})`, { retryable: true });
    case "transient":
      return new FleetError("sandbox", `simulated provider: 503 service busy (${at})`, { retryable: true });
    case "permanent":
      return new FleetError("sandbox", `simulated provider: template not found; creating this sandbox cannot succeed (${at})`, { retryable: false });
  }
}
