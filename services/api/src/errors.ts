import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { FleetError } from "@fleet/shared";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

/** An answer the api gives that no FleetError code names (422 for a reused Idempotency-Key, 414). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

const STATUS: Partial<Record<FleetError["code"], number>> = {
  bad_input: 400,
  not_found: 404,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  bus_unavailable: 503,
  store_unavailable: 503,
};

/** fastify's own refusals, by its error code, under codes of ours (docs/api.md#errors). */
const FRAMEWORK: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "payload_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_MAX_PARAM_LENGTH: "uri_too_long",
};

/** A path parameter may be this long; longer is 414 (ids are at most 128 characters). */
export const MAX_PARAM_LENGTH = 200;
/** A request line longer than this is 414 before any route runs; node itself refuses 16 KiB of head with 431. */
export const MAX_URL_LENGTH = 8_192;

export interface ErrorBody {
  error: { code: string; message: string; issues?: unknown[] };
}

const body = (code: string, message: string): ErrorBody => ({ error: { code, message } });

/** The one place an error becomes an answer: every status the api gives has the documented body. */
function answer(err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (hasZodFastifySchemaValidationErrors(err)) {
    return reply
      .code(400)
      .send({ error: { code: "bad_input", message: `invalid request: ${err.message}`, issues: err.validation } });
  }
  if (err instanceof HttpError) return reply.code(err.status).send(body(err.code, err.message));
  if (err instanceof FleetError) {
    const status = STATUS[err.code] ?? 500;
    if (status >= 500) req.log.error({ err: err.message, code: err.code }, "request failed");
    // A client told to back off is told when it may come again.
    if ((status === 503 || status === 429) && !reply.hasHeader("retry-after")) void reply.header("retry-after", "1");
    return reply.code(status).send(body(err.code, err.message));
  }
  const { statusCode: status, code } = err as Partial<FastifyError>;
  if (status === 429) return reply.code(429).send(body("rate_limited", (err as Error).message));
  if (status && status >= 400 && status < 500) {
    const ours = (code && FRAMEWORK[code]) ?? "bad_request";
    const message =
      code === "FST_ERR_MAX_PARAM_LENGTH"
        ? `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`
        : (err as Error).message;
    return reply.code(status).send(body(ours, message));
  }
  req.log.error({ err }, "request failed");
  return reply.code(500).send(body("internal", "internal error"));
}

/** Fastify options that route the refusals it makes before any hook (bad URL, 414) through `answer`. */
export const frameworkOptions = {
  routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
  frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => void answer(err, req, reply),
  clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket): void => {
    // The connection's head could not be parsed, so there is no request: write the answer by hand.
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    const [status, code, message] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "headers_too_large", "the request line and headers exceed 16 KiB"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "request_timeout", "the request did not arrive in time"]
          : [400, "bad_request", "the request is not valid HTTP"];
    const text = JSON.stringify(body(code, message));
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy();
  },
};

export function installErrors(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => answer(err, req, reply));
  // Says only what the client asked for: nothing about which paths exist or why.
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(body("not_found", `no route ${req.method} ${(req.url.split("?")[0] ?? "").slice(0, 200)}`)),
  );
  // Before routes and access: an over-long URL is refused whatever it names.
  app.addHook("onRequest", async (req) => {
    if (req.url.length > MAX_URL_LENGTH)
      throw new HttpError(414, "uri_too_long", `the URL is longer than ${MAX_URL_LENGTH} characters`);
  });
}
