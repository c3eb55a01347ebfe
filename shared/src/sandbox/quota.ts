import { z } from "zod";
import { FleetError } from "../errors/index.js";

/**
 * The provider's "not now": a 429, or a concurrent-sandbox limit. One error type for every
 * adapter, so admission can tell it from any other failure: it never fails a session, it sends the
 * session back to the queue for at least `retryAfterMs` and lowers the fleet's learned cap.
 */
export class ProviderQuotaError extends FleetError {
  /**
   * `concurrency`: the account holds as many sandboxes as it may (the fleet learns a cap from it);
   * `rate`: too many requests for now (the fleet only waits).
   */
  readonly kind: "concurrency" | "rate";
  /** From the answer's Retry-After, when it had one. */
  readonly retryAfterMs: number | undefined;
  /** The concurrent-sandbox limit the answer named, when it named one. */
  readonly limit: number | undefined;

  constructor(
    message: string,
    options: { kind: "concurrency" | "rate"; retryAfterMs?: number; limit?: number; cause?: unknown },
  ) {
    super("rate_limited", message, {
      retryable: true,
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.name = "ProviderQuotaError";
    this.kind = options.kind;
    this.retryAfterMs = options.retryAfterMs;
    this.limit = options.limit;
  }
}

/** Whether a provider's message speaks of its concurrent-sandbox limit rather than of request rates. */
export function isConcurrencyMessage(message: string): boolean {
  return /concurren|maximum number of (running )?sandboxes|sandbox limit/i.test(message);
}

export function isProviderQuota(err: unknown): err is ProviderQuotaError {
  return err instanceof ProviderQuotaError;
}

/** A Retry-After is at most a day: anything longer is a broken header, not advice. */
export const MAX_RETRY_AFTER_MS = 86_400_000;

const DeltaSeconds = z
  .string()
  .trim()
  .regex(/^\d{1,9}$/)
  .transform(Number);
const HttpDate = z
  .string()
  .trim()
  .refine((v) => /[A-Za-z]/.test(v) && !Number.isNaN(Date.parse(v)))
  .transform((v) => Date.parse(v));

/**
 * Retry-After as milliseconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Undefined for anything else; a date in the past is 0; capped at a day.
 */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== "string") return undefined;
  const seconds = DeltaSeconds.safeParse(value);
  if (seconds.success) return Math.min(MAX_RETRY_AFTER_MS, seconds.data * 1000);
  const date = HttpDate.safeParse(value);
  if (date.success) return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, date.data - now));
  return undefined;
}

/** A limit a provider's message names, e.g. "maximum number of concurrent sandboxes (20)". */
export function limitInMessage(message: string): number | undefined {
  const m = /concurrent[^()]{0,60}?\((\d{1,6})\)/i.exec(message) ?? /limit of (\d{1,6}) concurrent/i.exec(message);
  const n = m ? Number(m[1]) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : undefined;
}
