import { type IncomingMessage, request, type ServerResponse } from "node:http";
import { z } from "zod";
import { ENVD_PORT, PORT_HEADER } from "./envd/server.js";
import type { SandboxPool } from "./sandboxes.js";

/**
 * Traffic to sandboxes, routed as E2B's sandbox proxy does: by the E2b-Sandbox-Id and
 * E2b-Sandbox-Port headers the SDK sends (envd on 49983, any other port inside the sandbox), or,
 * for clients that cannot add headers (the agent client), by a path prefix
 * `/ports/{sandboxId}/{port}/...` (see portUrlTemplate). Each request goes to the sandbox's envd
 * over its Unix socket, which serves it or passes it to the port inside.
 */

const Route = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
  port: z.coerce.number().int().min(1).max(65535),
  path: z.string().startsWith("/"),
});

export const PORT_PATH = /^\/ports\/([^/]+)\/(\d+)(\/.*)?$/;

/** The template a port URL follows: `{sandboxId}` and `{port}` are filled in by the fleet's e2b adapter. */
export function portUrlTemplate(sandboxUrl: string): string {
  return `${sandboxUrl.replace(/\/+$/, "")}/ports/{sandboxId}/{port}`;
}

function fail(res: ServerResponse, status: number, message: string, sandboxId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: status, message, ...(sandboxId ? { sandboxId } : {}) }));
}

/** The sandbox, port and path a request is for, or why it names none. */
function routeOf(req: IncomingMessage): z.output<typeof Route> | string {
  const header = req.headers["e2b-sandbox-id"];
  const byPath = PORT_PATH.exec(req.url ?? "");
  const raw =
    typeof header === "string"
      ? { id: header, port: req.headers[PORT_HEADER] ?? ENVD_PORT, path: req.url ?? "/" }
      : byPath
        ? { id: byPath[1], port: byPath[2], path: byPath[3] ?? "/" }
        : undefined;
  if (!raw) return "no sandbox named: send E2b-Sandbox-Id and E2b-Sandbox-Port, or /ports/{id}/{port}/";
  const route = Route.safeParse(raw);
  return route.success ? route.data : z.prettifyError(route.error);
}

export function createProxyHandler(pool: SandboxPool) {
  return function handle(req: IncomingMessage, res: ServerResponse): void {
    const route = routeOf(req);
    const sandbox = typeof route === "string" ? undefined : pool.get(route.id);
    if (typeof route === "string" || !sandbox) {
      if (typeof route === "string") fail(res, 400, route);
      else fail(res, 502, "The sandbox was not found", route.id);
      return;
    }
    // envd answers only its access token's holders (its /health excepted); a sandbox's other ports are public.
    if (
      route.port === ENVD_PORT &&
      !route.path.startsWith("/health") &&
      req.headers["x-access-token"] !== sandbox.accessToken
    ) {
      fail(res, 401, "unauthorized access, please provide a valid access token", route.id);
      return;
    }
    const headers: Record<string, string | string[] | undefined> = {
      ...req.headers,
      [PORT_HEADER]: String(route.port),
    };
    delete headers["e2b-sandbox-id"];
    const upstream = request(
      { socketPath: sandbox.envdSocket, method: req.method, path: route.path, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.once("error", () => fail(res, 502, "The sandbox is not reachable", route.id));
    res.once("close", () => upstream.destroy());
    req.pipe(upstream);
  };
}
