import { request } from "node:http";

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One HTTP request with the path sent byte for byte: fetch (and `new URL`) would resolve dot
 * segments and re-encode the path, and the tests that use this ask exactly what a client sent.
 */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          ...options.headers,
          ...(options.body !== undefined ? { "content-length": String(Buffer.byteLength(options.body)) } : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The answer's body when it is JSON, else undefined. */
export function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export interface OpenStream {
  /** Resolves with the status once the answer's head arrives (0 if the request never got one). */
  readonly head: Promise<number>;
  /** Everything received so far. */
  readonly text: () => string;
  /** Resolves once `pattern` has been received (never, if it does not come). */
  until(pattern: string): Promise<void>;
  /** Resolves true when the server ended the answer, false when we dropped it first. */
  readonly ended: Promise<boolean>;
  /** Drops the connection, as a client that goes away does. */
  drop(): void;
}

/** A streamed GET (server-sent events) on a connection of its own, which the caller may drop at any moment. */
export function openStream(base: string, path: string, headers: Record<string, string>): OpenStream {
  const url = new URL(base);
  let text = "";
  const waiters: Array<{ pattern: string; resolve: () => void }> = [];
  let resolveHead: (status: number) => void = () => undefined;
  let resolveEnded: (byServer: boolean) => void = () => undefined;
  const head = new Promise<number>((r) => (resolveHead = r));
  const ended = new Promise<boolean>((r) => (resolveEnded = r));
  const req = request({ host: url.hostname, port: url.port, method: "GET", path, headers, agent: false }, (res) => {
    resolveHead(res.statusCode ?? 0);
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      text += c;
      for (const w of waiters.filter((x) => text.includes(x.pattern))) w.resolve();
    });
    res.on("end", () => resolveEnded(true));
    res.on("close", () => resolveEnded(false));
  });
  req.on("error", () => {
    resolveHead(0);
    resolveEnded(false);
  });
  req.on("close", () => resolveHead(0));
  req.end();
  return {
    head,
    text: () => text,
    until: (pattern) =>
      text.includes(pattern) ? Promise.resolve() : new Promise((resolve) => waiters.push({ pattern, resolve })),
    ended,
    drop: () => req.destroy(),
  };
}
