import { FleetError, errorMessage } from "../../errors/index.js";
import { isConcurrencyMessage, limitInMessage, parseRetryAfter, ProviderQuotaError } from "../quota.js";

/**
 * E2B SDK errors as FleetErrors. Matched by class name rather than instanceof: the SDK is loaded
 * lazily, and a second copy of it in node_modules would defeat instanceof anyway.
 */

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && out.length < 6; e = (e as { cause?: unknown }).cause)
    out.push(e);
  return out;
}

/** fetch failures, aborted requests and socket errors: the service may well answer next time. */
export function isNetworkError(err: unknown): boolean {
  return chain(err).some((e) => {
    const { name, code, message } = e as { name?: unknown; code?: unknown; message?: unknown };
    if (typeof code === "string" && NETWORK_CODES.has(code)) return true;
    if (name === "AbortError" || name === "TimeoutError" || name === "ConnectTimeoutError") return true;
    return name === "TypeError" && message === "fetch failed";
  });
}

export function isNotFound(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return (
    name === "SandboxNotFoundError" ||
    name === "NotFoundError" ||
    name === "FileNotFoundError" ||
    (err as { statusCode?: unknown } | null)?.statusCode === 404
  );
}

/**
 * A Retry-After the error carries: the SDK's errors hold none today (it waits out a Retry-After
 * itself, up to its `retries`, before it gives up), but a response or headers object on the error
 * chain is read when there is one.
 */
function retryAfterOf(err: unknown): number | undefined {
  for (const e of chain(err)) {
    const { headers, response, retryAfter } = e as { headers?: unknown; response?: unknown; retryAfter?: unknown };
    const fromHeaders = [headers, (response as { headers?: unknown } | undefined)?.headers].map((h) =>
      h && typeof (h as Headers).get === "function" ? (h as Headers).get("retry-after") : undefined,
    );
    for (const v of [...fromHeaders, typeof retryAfter === "number" ? String(retryAfter) : retryAfter]) {
      const ms = parseRetryAfter(v);
      if (ms !== undefined) return ms;
    }
  }
  return undefined;
}

/** E2B's 429 (too many requests, or the team's concurrent-sandbox limit) as the port's quota error. */
function quotaError(err: unknown, message: string): ProviderQuotaError {
  const retryAfterMs = retryAfterOf(err);
  const said = errorMessage(err);
  const limit = limitInMessage(said);
  return new ProviderQuotaError(message, {
    kind: limit !== undefined || isConcurrencyMessage(said) ? "concurrency" : "rate",
    cause: err,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(limit === undefined ? {} : { limit }),
  });
}

export function mapE2BError(err: unknown, what: string): FleetError {
  if (err instanceof FleetError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  const message = `E2B ${what} failed: ${errorMessage(err)}`;
  const fail = (code: "config" | "sandbox", retryable: boolean) =>
    new FleetError(code, message, { retryable, cause: err });
  switch (name) {
    case "AuthenticationError":
      return fail("config", false);
    // Never a session's failure: admission backs off and queues the session again.
    case "RateLimitError":
      return quotaError(err, message);
    case "ServiceBusyError":
    case "TimeoutError":
      return fail("sandbox", true);
    case "SandboxNotFoundError":
    case "NotFoundError":
    case "FileNotFoundError":
    case "InvalidArgumentError":
    case "TemplateError":
    case "NotEnoughSpaceError":
      return fail("sandbox", false);
  }
  if (typeof status === "number") {
    if (status === 401 || status === 403) return fail("config", false);
    if (status === 429) return quotaError(err, message);
    if (status === 408 || status >= 500) return fail("sandbox", true);
    if (status >= 400) return fail("sandbox", false);
  }
  if (isNetworkError(err)) return fail("sandbox", true);
  // Unknown trouble: retryable, and max_deliver bounds the retries.
  return fail("sandbox", true);
}
