import type { FastifyInstance } from "fastify";

/**
 * A known path asked with a method none of its routes has answers 405 with `Allow`, not 404 (or,
 * for a body method like QUERY, fastify's 400 about a missing content type): the path exists, the
 * method is what is wrong. Call before any route is registered, so every route is seen.
 */
export function installMethodNotAllowed(app: FastifyInstance): void {
  const routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  app.addHook("onRoute", (route) => {
    let entry = routes.get(route.url);
    if (!entry) {
      entry = { pattern: patternOf(route.url), methods: new Set() };
      routes.set(route.url, entry);
    }
    for (const m of [route.method].flat()) entry.methods.add(m.toUpperCase());
  });
  app.addHook("onRequest", async (req, reply) => {
    if (!req.is404) return;
    const path = req.url.split("?")[0] ?? "";
    const allowed = new Set<string>();
    for (const { pattern, methods } of routes.values()) if (pattern.test(path)) for (const m of methods) allowed.add(m);
    if (allowed.size === 0 || allowed.has(req.method)) return;
    const allow = [...allowed].sort().join(", ");
    return reply
      .code(405)
      .header("allow", allow)
      .send({
        error: { code: "method_not_allowed", message: `${req.method} is not allowed on ${path} (allowed: ${allow})` },
      });
  });
}

/** `/v1/sessions/:id/logs` -> a regex matching one path segment where each parameter is. */
function patternOf(url: string): RegExp {
  const source = url
    .split("/")
    .map((segment) =>
      segment.startsWith(":") ? "[^/]+" : segment === "*" ? ".*" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return new RegExp(`^${source}$`);
}
