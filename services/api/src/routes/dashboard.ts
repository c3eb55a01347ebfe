import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { FastifyPluginAsync } from "fastify";

/** The dashboard's files: the page and its style as written, the script as tsc built it. */
const FILES = {
  "/dashboard": ["index.html", "text/html; charset=utf-8"],
  "/dashboard/style.css": ["style.css", "text/css; charset=utf-8"],
  "/dashboard/app.js": ["dist/app.js", "text/javascript; charset=utf-8"],
} as const;

/**
 * Only the page's own files run, and it talks to this api alone: agent output shown on it can
 * neither load nor send anything elsewhere.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The dashboard (services/api/dashboard): static files without data, so they need no key; the page
 * asks the /v1 routes with the key the user gives it, like any client.
 */
export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  const dir = fileURLToPath(new URL("../../dashboard/", import.meta.url));
  for (const [path, [file, type]] of Object.entries(FILES)) {
    const body = readFileSync(`${dir}${file}`);
    app.get(path, { schema: { hide: true }, config: { access: "public" } }, async (_req, reply) =>
      reply
        .type(type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .send(body),
    );
  }
  app.get("/", { schema: { hide: true }, config: { access: "public" } }, async (_req, reply) =>
    reply.redirect("/dashboard"),
  );
};
