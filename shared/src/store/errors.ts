import { MongoServerError } from "mongodb";
import { z } from "zod";
import { FleetError, errorMessage } from "../errors/index.js";

/** The server's error codes the store decides on (MongoDB's error_codes.yml). */
export const MONGO_CODES = {
  BadValue: 2,
  FailedToParse: 9,
  Unauthorized: 13,
  TypeMismatch: 14,
  AuthenticationFailed: 18,
  DocumentValidationFailure: 121,
  /** A write that hit a unique key (an _id or a unique index) already taken. */
  DuplicateKey: 11000,
} as const;

export const DUPLICATE_KEY = MONGO_CODES.DuplicateKey;

/** A write refused because its unique key is taken: for slots and inserts, "someone else has it". */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/**
 * Server answers that say the request itself is wrong; anything else (network, a busy or locked
 * backend, an internal error) may pass, and the bus's bounded redelivery retries it.
 */
const PERMANENT_CODES = new Set<number>(Object.values(MONGO_CODES));

/**
 * Store errors become FleetErrors, retryable unless the server said the request is wrong. A stored
 * document the contract refuses is no outage: asking again reads the same document, so it is an
 * internal error, not retried, saying which fields are wrong.
 */
export function wrap(op: string, err: unknown): FleetError {
  if (err instanceof FleetError) return err;
  if (err instanceof z.ZodError) {
    return new FleetError(
      "internal",
      `store ${op}: a stored document does not match the contract: ${z.prettifyError(err)}`,
      {
        cause: err,
      },
    );
  }
  const retryable =
    !(err instanceof MongoServerError) ||
    err.hasErrorLabel("RetryableWriteError") ||
    !PERMANENT_CODES.has(Number(err.code));
  return new FleetError("store_unavailable", `store ${op} failed: ${errorMessage(err)}`, { retryable, cause: err });
}

/** Runs one store call, turning what it throws into a FleetError named after the operation. */
export async function guarded<T>(op: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw wrap(op, err);
  }
}
