import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ConnectError, isStreamingRequest, readBody, sendUnaryError, ServerStream, unenvelope } from "../connect.js";
import { EnvdContext, type EnvdOptions } from "./context.js";
import { FilesystemService, httpError } from "./files.js";
import { ProcessService } from "./process.js";

/** The port envd listens on in an E2B sandbox; requests for any other port go to that port inside. */
export const ENVD_PORT = 49983;
export const PORT_HEADER = "e2b-sandbox-port";

type Unary = (raw: unknown, res: ServerResponse) => void | Promise<void>;
type Streaming = (raw: unknown, req: IncomingMessage, res: ServerResponse) => void;

/**
 * envd as it runs inside a sandbox (over a Unix socket in the sandbox's bridge folder): the
 * process and filesystem Connect services, /files and /health, and plain HTTP to the sandbox's
 * own ports, which only processes in this network namespace can reach.
 */
export function createEnvdServer(options: EnvdOptions): { server: Server; shutdown(): void } {
  const ctx = new EnvdContext(options);
  const processes = new ProcessService(ctx);
  const fs = new FilesystemService(ctx);
  const unary: Record<string, Unary> = {
    "/process.Process/List": (raw, res) => processes.list(raw, res),
    "/process.Process/SendSignal": (raw, res) => processes.sendSignal(raw, res),
    "/process.Process/SendInput": (raw, res) => processes.sendInput(raw, res),
    "/process.Process/CloseStdin": (raw, res) => processes.closeStdin(raw, res),
    "/filesystem.Filesystem/Stat": (raw, res) => fs.stat(raw, res),
    "/filesystem.Filesystem/MakeDir": (raw, res) => fs.makeDir(raw, res),
    "/filesystem.Filesystem/ListDir": (raw, res) => fs.listDir(raw, res),
    "/filesystem.Filesystem/Remove": (raw, res) => fs.remove(raw, res),
    "/filesystem.Filesystem/Move": (raw, res) => fs.move(raw, res),
  };
  const streaming: Record<string, Streaming> = {
    "/process.Process/Start": (raw, req, res) => processes.start(raw, req, res),
    "/process.Process/Connect": (raw, req, res) => processes.connect(raw, req, res),
  };

  async function rpc(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const stream = streaming[path];
    const call = unary[path];
    if (!stream && !call) throw new ConnectError("unimplemented", `${path} is not implemented`);
    const body = await readBody(req);
    if (stream) {
      if (!isStreamingRequest(req)) throw new ConnectError("invalid_argument", `${path} is a server stream`);
      const raw = unenvelope(body);
      try {
        stream(raw, req, res);
      } catch (err) {
        // A stream that fails before its first message still answers 200, ending with the error.
        new ServerStream(res).end(err);
      }
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(body.toString("utf8") || "{}");
    } catch {
      throw new ConnectError("invalid_argument", "body is not JSON");
    }
    await (call as Unary)(raw, res);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://envd");
    const port = Number(req.headers[PORT_HEADER] ?? ENVD_PORT);
    if (port !== ENVD_PORT) {
      forward(req, res, port);
      return;
    }
    const done = (p: Promise<void>) =>
      p.catch((err: unknown) => {
        if (url.pathname === "/files") httpError(res, 500, (err as Error).message);
        else sendUnaryError(res, err);
      });
    if (url.pathname === "/health") {
      res.writeHead(204).end();
      return;
    }
    if (url.pathname === "/files" && req.method === "GET") return void done(fs.download(url, res));
    if (url.pathname === "/files" && req.method === "POST") return void done(fs.upload(url, req, res));
    if (req.method === "POST") return void done(rpc(req, res, url.pathname));
    httpError(res, 404, `${req.method} ${url.pathname} not found`);
  });
  return { server, shutdown: () => processes.killAll() };
}

/** Plain HTTP to a port inside the sandbox; 502 when nothing listens there (as E2B's proxy answers). */
function forward(req: IncomingMessage, res: ServerResponse, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    httpError(res, 400, "invalid port");
    return;
  }
  const headers = { ...req.headers };
  delete headers[PORT_HEADER];
  delete headers["e2b-sandbox-id"];
  const upstream = request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.once("error", () => httpError(res, 502, `The sandbox is running but port is not open (port ${port})`));
  res.once("close", () => upstream.destroy());
  req.pipe(upstream);
}
