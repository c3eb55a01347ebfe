/**
 * One error type for the whole fleet. `code` is stable and machine-readable, `retryable` tells a
 * handler whether to nak with backoff (true) or terminate (false), `cause` keeps the original.
 */
export type ErrorCode =
  | "bad_input"
  | "not_found"
  | "conflict"
  | "invalid_transition"
  | "config"
  | "bus_unavailable"
  | "store_unavailable"
  | "infra"
  | "sandbox"
  | "agent"
  | "timeout"
  | "cancelled"
  | "session_ended"
  | "superseded"
  | "shutting_down"
  | "stalled"
  | "rate_limited"
  | "unauthorized"
  | "forbidden"
  | "internal";

export interface FleetErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  details?: unknown;
}

export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: FleetErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FleetError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean } {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/**
 * The session ended (cancelled, past its deadline, superseded by a newer session of its card)
 * while a stage was still working on it: the stage stops and gives back what it holds. Final.
 */
export class SessionEnded extends FleetError {
  constructor(sessionId: string, when: string) {
    super("session_ended", `session ${sessionId} ended ${when}`);
    this.name = "SessionEnded";
  }
}

/**
 * A later delivery of the same message took this work over (this one's ack wait lapsed): the
 * handler stopped, and the message is the later delivery's to settle. No ack, nak or term follows
 * from this delivery: the server settles a message whichever delivery answers, so an ack would drop
 * the redelivery a crash of the new holder needs, and a nak would take the work from it.
 */
export class Superseded extends FleetError {
  constructor(what: string) {
    super("superseded", what);
    this.name = "Superseded";
  }
}

/** This instance is stopping: the work goes back to the bus for another instance. Retryable. */
export class ShuttingDown extends FleetError {
  constructor(what: string) {
    super("shutting_down", `shutting down ${what}`, { retryable: true });
    this.name = "ShuttingDown";
  }
}

export function isFleetError(err: unknown): err is FleetError {
  return err instanceof FleetError;
}

/** Unknown errors are treated as retryable: max_deliver bounds the retries and dead-letters the rest. */
export function isRetryable(err: unknown): boolean {
  return isFleetError(err) ? err.retryable : true;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === "string" ? err : JSON.stringify(err);
}
