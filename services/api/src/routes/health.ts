import type { Bus, SessionStore } from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Registry } from "prom-client";
import { z } from "zod";
import { FRAMEWORK_ERRORS, errors } from "../schemas.js";

export interface HealthDeps {
  store: SessionStore;
  bus: Bus;
  registry: Registry;
}

const Ready = z.object({ ok: z.boolean(), bus: z.boolean(), store: z.boolean() });

export const healthRoutes =
  (deps: HealthDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      "/healthz",
      {
        schema: {
          summary: "The process is up",
          response: { 200: z.object({ ok: z.literal(true) }), ...errors(...FRAMEWORK_ERRORS) },
        },
        config: { access: "public" },
      },
      async () => ({ ok: true as const }),
    );

    app.get(
      "/readyz",
      {
        schema: {
          summary: "Bus and store reachable",
          response: { 200: Ready, 503: Ready, ...errors(...FRAMEWORK_ERRORS) },
        },
        config: { access: "public" },
      },
      async (_req, reply) => {
        const within = (p: Promise<void>): Promise<boolean> =>
          Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2_000))]).catch(
            () => false,
          );
        const [bus, store] = await Promise.all([within(deps.bus.ping()), within(deps.store.ping())]);
        return reply.code(bus && store ? 200 : 503).send({ ok: bus && store, bus, store });
      },
    );

    app.get(
      "/metrics",
      { schema: { summary: "Prometheus metrics", hide: true }, config: { access: "public" } },
      async (_req, reply) => {
        reply.header("content-type", deps.registry.contentType);
        return deps.registry.metrics();
      },
    );
  };
