import { z } from "zod";

/**
 * Provider faults on demand for SANDBOX_PROVIDER=simulated (benchmarks and tests only), parsed here
 * with the rest of the sandbox settings so a bad value stops a service at start like any other.
 * Chosen per project, so one fleet can run faulty and healthy sessions side by side, and counted by
 * the creates of each session (in the simulated state directory), so every spawner process agrees.
 */
export const SimFaultKind = z.enum(["rate_limit", "transient", "permanent"]);
export type SimFaultKind = z.infer<typeof SimFaultKind>;

export const SimCreateFault = z.object({
  projectId: z.string().min(1),
  kind: SimFaultKind,
  /** The session's creates 1..n fail; a permanent fault fails every one. */
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
    for (const entry of spec
      .split(",")
      .map((e) => e.trim())
      .filter(Boolean)) {
      const m = ENTRY.exec(entry);
      if (!m) {
        ctx.addIssue({
          code: "custom",
          message: `'${entry}' is not <project>=<rate_limit|transient|permanent>[:attempts]`,
        });
        return z.NEVER;
      }
      const kind = SimFaultKind.parse(m[2]);
      faults.push({
        projectId: m[1] as string,
        kind,
        attempts: kind === "permanent" ? Number.MAX_SAFE_INTEGER : Number(m[3] ?? "1"),
      });
    }
    return faults;
  });
