import { z } from "zod";
import { Millis, ProjectId, SessionId } from "./common.js";

export { SessionBudget } from "./common.js";

/**
 * The model gateway's ledger (services/gateway): what each model call cost, measured by the fleet
 * from the provider's own usage report, never from what an agent says. Stored in `usage`: one record
 * per call and running totals per session and per project and day, all written by one store
 * operation per call.
 */

/** A UTC calendar day, `YYYY-MM-DD`: the unit of a project's daily totals and budget. */
export const UsageDay = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "a day as YYYY-MM-DD")
  .refine((d) => {
    const at = Date.parse(`${d}T00:00:00Z`);
    // A real day (not 2031-02-30), from 1970 on.
    return at >= 0 && new Date(at).toISOString().startsWith(d);
  }, "not a calendar day from 1970-01-01 on")
  .describe("UTC day, YYYY-MM-DD");
export type UsageDay = z.infer<typeof UsageDay>;

export function usageDay(at: number): UsageDay {
  return new Date(at).toISOString().slice(0, 10);
}

export const UsageTotals = z.object({
  calls: z.number().int().nonnegative(),
  tokensIn: z.number().int().nonnegative().describe("prompt tokens, cached ones included"),
  tokensOut: z.number().int().nonnegative().describe("completion tokens"),
  cachedTokens: z.number().int().nonnegative().describe("prompt tokens the provider served from its cache"),
  cost: z.number().nonnegative().describe("from the gateway's price table (GATEWAY_PRICES), per million tokens"),
});
export type UsageTotals = z.infer<typeof UsageTotals>;

export const ZERO_USAGE: UsageTotals = { calls: 0, tokensIn: 0, tokensOut: 0, cachedTokens: 0, cost: 0 };

/** One model call through the gateway. */
export const UsageCall = z.object({
  callId: z.string().min(1).max(100),
  sessionId: SessionId,
  projectId: ProjectId,
  attempt: z.number().int().nonnegative(),
  /** The model that answered (after any fallback). */
  model: z.string().min(1).max(200),
  /** The model the agent asked for, when a fallback answered instead. */
  requestedModel: z.string().min(1).max(200).optional(),
  tokensIn: z.number().int().nonnegative(),
  tokensOut: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative(),
  cost: z.number().nonnegative(),
  /** The upstream sent no usage: the counts are estimated from the bytes (4 a token). */
  estimated: z.boolean().optional(),
  stream: z.boolean(),
  /** The upstream's HTTP status for the answer the agent got. */
  status: z.number().int(),
  /** Time from the call reaching the gateway to its first byte from upstream, and to its end. */
  firstByteMs: z.number().nonnegative().optional(),
  durationMs: z.number().nonnegative(),
  at: Millis,
});
export type UsageCall = z.infer<typeof UsageCall>;

/** A session's totals, as the session document shows them (`usage`). */
export const SessionUsage = UsageTotals.extend({
  firstAt: Millis,
  lastAt: Millis,
}).describe("what the model gateway measured for this session (its ledger), absent when it made no call through it");
export type SessionUsage = z.infer<typeof SessionUsage>;

/** A project's totals for one day. */
export const ProjectDayUsage = UsageTotals.extend({ projectId: ProjectId, day: UsageDay });
export type ProjectDayUsage = z.infer<typeof ProjectDayUsage>;

/**
 * Why a session must end, recorded on its document by a component that may not end it itself (the
 * gateway refusing a call over budget); the poller watching the session ends it with this error and
 * writes the message to its log. Only for the attempt named.
 */
export const EndRequest = z
  .object({
    code: z.enum(["budget_exceeded"]),
    message: z.string().max(2_000),
    attempt: z.number().int().nonnegative(),
    at: Millis,
  })
  .strict();
export type EndRequest = z.infer<typeof EndRequest>;
