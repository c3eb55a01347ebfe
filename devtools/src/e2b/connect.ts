import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";

/**
 * The Connect protocol in its JSON form (what the E2B SDK speaks to envd: `useBinaryFormat: false`),
 * by hand: unary calls are a JSON body each way; a server stream is a request of one enveloped
 * message and a response of enveloped messages closed by an end-of-stream envelope (flag 0x02).
 * Envelope: one flag byte, a 4-byte big-endian length, then the JSON.
 */

export type ConnectCode =
  | "canceled"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "failed_precondition"
  | "unimplemented"
  | "internal"
  | "unavailable";

const HTTP_STATUS: Record<ConnectCode, number> = {
  canceled: 499,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  failed_precondition: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
};

export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

const MAX_BODY = 16 * 1024 * 1024;
const END_STREAM = 0x02;

export async function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new ConnectError("invalid_argument", `request body over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function envelope(message: unknown, flags = 0): Buffer {
  const json = Buffer.from(JSON.stringify(message), "utf8");
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

/** The one message of a server-streaming request. */
export function unenvelope(body: Buffer): unknown {
  if (body.length < 5) throw new ConnectError("invalid_argument", "missing envelope");
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) throw new ConnectError("invalid_argument", "truncated envelope");
  if ((body.readUInt8(0) & 0x01) !== 0) throw new ConnectError("unimplemented", "compressed messages");
  return parseJson(body.subarray(5, 5 + length));
}

function parseJson(buf: Buffer): unknown {
  try {
    return JSON.parse(buf.toString("utf8") || "{}");
  } catch {
    throw new ConnectError("invalid_argument", "body is not JSON");
  }
}

/** Parses a request message with its zod schema, as a Connect invalid_argument when it does not fit. */
export function parseMessage<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ConnectError("invalid_argument", z.prettifyError(parsed.error));
  return parsed.data;
}

export function isStreamingRequest(req: IncomingMessage): boolean {
  return (req.headers["content-type"] ?? "").startsWith("application/connect+json");
}

export function sendUnary(res: ServerResponse, message: unknown): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(message));
}

export function sendUnaryError(res: ServerResponse, err: unknown): void {
  const e = err instanceof ConnectError ? err : new ConnectError("internal", (err as Error)?.message ?? String(err));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(HTTP_STATUS[e.code], { "content-type": "application/json" });
  res.end(JSON.stringify({ code: e.code, message: e.message }));
}

/** A server stream: start it, write messages, end it (with or without an error). */
export class ServerStream {
  private ended = false;
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.flushHeaders();
  }
  get closed(): boolean {
    return this.ended || this.res.destroyed || this.res.writableEnded;
  }
  send(message: unknown): void {
    if (!this.closed) this.res.write(envelope(message));
  }
  end(err?: unknown): void {
    if (this.closed) return;
    this.ended = true;
    const error =
      err === undefined
        ? undefined
        : err instanceof ConnectError
          ? { code: err.code, message: err.message }
          : { code: "internal", message: (err as Error)?.message ?? String(err) };
    this.res.end(envelope(error ? { error } : {}, END_STREAM));
  }
}

/** Connect's timeout header, in ms (absent or 0: none). */
export function connectTimeoutMs(req: IncomingMessage): number | undefined {
  const raw = Number(req.headers["connect-timeout-ms"]);
  return Number.isFinite(raw) && raw > 0 ? raw : undefined;
}
