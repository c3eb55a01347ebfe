import { FleetError, errorMessage } from "../../errors/index.js";

/** The SDK's non-throwing result: `response` is absent when no HTTP answer came at all. */
export interface SdkResult {
  data?: unknown;
  error?: unknown;
  response?: Response;
}

export function passwordRefused(): FleetError {
  return new FleetError("agent", "agent server refused the password", { retryable: false });
}

/** No HTTP answer: the server is down, starting, overloaded or unreachable; all worth retrying. */
export function callFailed(op: string, err: unknown, signal: AbortSignal, timeoutMs: number): FleetError {
  if (signal.aborted) {
    return new FleetError("agent", `${op}: agent server did not answer within ${timeoutMs} ms`, {
      retryable: true,
      cause: err,
    });
  }
  // The SDK rejects HTML answers: something else (a proxy, a newer OpenCode's web app) is at that address.
  if (err instanceof Error && err.message.includes("text/html")) {
    return new FleetError("agent", `${op}: the address does not serve OpenCode's API (got HTML)`, {
      retryable: false,
      cause: err,
    });
  }
  return new FleetError("agent", `${op}: agent server unreachable: ${describe(err)}`, { retryable: true, cause: err });
}

export function checkResponse(op: string, result: SdkResult, signal: AbortSignal, timeoutMs: number): unknown {
  const { response } = result;
  if (!response) throw callFailed(op, result.error, signal, timeoutMs);
  if (response.status === 401) throw passwordRefused();
  if (!response.ok) {
    const status = response.status;
    const detail = errorDetail(result.error);
    return fail(
      new FleetError(
        status === 404 ? "not_found" : "agent",
        `${op}: agent server answered HTTP ${status}${detail ? `: ${detail}` : ""}`,
        {
          retryable: status >= 500 || status === 408 || status === 429,
        },
      ),
    );
  }
  return result.data;
}

/** The event stream's connection failed (the SDK reports it as "SSE failed: <status> ..."). */
export function streamFailed(err: unknown): FleetError {
  const status = /SSE failed: (\d{3})/.exec(errorMessage(err))?.[1];
  if (status === "401") return passwordRefused();
  return new FleetError("agent", `agent event stream failed: ${describe(err)}`, { retryable: true, cause: err });
}

function fail(err: FleetError): never {
  throw err;
}

/** OpenCode's error bodies are `{name, data: {message}}` or plain text; keep a short, safe summary. */
function errorDetail(body: unknown): string {
  if (typeof body === "string") return body.slice(0, 200);
  if (body && typeof body === "object") {
    const b = body as { name?: unknown; message?: unknown; data?: { message?: unknown } };
    const message =
      typeof b.data?.message === "string" ? b.data.message : typeof b.message === "string" ? b.message : undefined;
    const name = typeof b.name === "string" ? b.name : undefined;
    return [name, message].filter(Boolean).join(": ").slice(0, 200);
  }
  return "";
}

/** Node's fetch hides the reason (ECONNREFUSED, ...) in `cause`. */
function describe(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${errorMessage(err)}${cause}`.slice(0, 300);
}
