import { FleetError, errorMessage } from "../../errors/index.js";

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

export function mapE2BError(err: unknown, what: string): FleetError {
  if (err instanceof FleetError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  const message = `E2B ${what} failed: ${errorMessage(err)}`;
  const fail = (code: "config" | "sandbox" | "rate_limited", retryable: boolean) =>
    new FleetError(code, message, { retryable, cause: err });
  switch (name) {
    case "AuthenticationError":
      return fail("config", false);
    // Its own code, so a session that gives up after the retries says the provider's limit was why.
    case "RateLimitError":
      return fail("rate_limited", true);
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
    if (status === 429) return fail("rate_limited", true);
    if (status === 408 || status >= 500) return fail("sandbox", true);
    if (status >= 400) return fail("sandbox", false);
  }
  if (isNetworkError(err)) return fail("sandbox", true);
  // Unknown trouble: retryable, and max_deliver bounds the retries.
  return fail("sandbox", true);
}
