import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import { asyncApiDocument } from "@fleet/shared/bus";
import type { Bus, CallbackTokenConfig, KnownProjects, Logger, SandboxProvider, SessionStore } from "@fleet/shared";
import { consumerMetrics, sessionsEndedCounter } from "@fleet/shared/metrics";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { markOptionalBodies } from "./openapi.js";
import type { Registry } from "prom-client";
import { installAuth, type AuthOptions } from "./auth.js";
import { frameworkOptions, installErrors } from "./errors.js";
import { createFollowers, type FollowerCaps } from "./follow/index.js";
import { installMethodNotAllowed } from "./methods.js";
import { callbackRoutes } from "./routes/callbacks.js";
import { healthRoutes } from "./routes/health.js";
import { logRoutes } from "./routes/logs.js";
import { sessionRoutes } from "./routes/sessions.js";
import { usageRoutes } from "./routes/usage.js";
import { fleetRoutes } from "./routes/fleet.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { SECURITY_SCHEMES } from "./schemas.js";

export interface ApiDeps {
  store: SessionStore;
  bus: Bus;
  logger: Logger;
  registry: Registry;
  /** API keys ("keys", the default) or none ("off", for a trusted network only). */
  auth?: AuthOptions;
  /** Submits per minute per API key. */
  submitsPerMinute?: number;
  /** Sandbox callbacks: on when signing keys and the sandbox provider are given. */
  callbacks?: { tokens: CallbackTokenConfig; provider: SandboxProvider };
  /** Projects this fleet serves (default: any). */
  projects?: KnownProjects;
  /** Largest request body accepted, in bytes. */
  bodyLimit?: number;
  /** The fleet's name (FLEET_NAME): whose warm pool the overview shows (default `fleet`). */
  fleet?: string;
  /** Open log streams per API key and per process (default 50 and 1,000); more are refused with 429. */
  followers?: Partial<FollowerCaps>;
}

/** Builds the HTTP app (no I/O until `listen`). */
export async function createApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit ?? 8 * 1024 * 1024,
    ...frameworkOptions,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "session fleet api", version: "1.0.0", description: "Create, follow and query agent sessions." },
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    transform: jsonSchemaTransform,
    transformObject: markOptionalBodies,
  });

  installErrors(app);
  installMethodNotAllowed(app);
  await app.register(rateLimit, { global: false });
  installAuth(app, deps.store, deps.auth ?? { mode: "keys" });
  await app.register(
    sessionRoutes({
      store: deps.store,
      bus: deps.bus,
      submitsPerMinute: deps.submitsPerMinute ?? 60,
      ...(deps.projects ? { projects: deps.projects } : {}),
    }),
  );
  const followers = createFollowers({
    store: deps.store,
    bus: deps.bus,
    logger: deps.logger,
    registry: deps.registry,
    ...(deps.followers ? { caps: deps.followers } : {}),
  });
  // Open streams would hold close() until their sessions end: end them first (clients resume elsewhere).
  app.addHook("preClose", async () => followers.hub.close());
  await app.register(logRoutes({ store: deps.store, bus: deps.bus, followers }));
  await app.register(usageRoutes({ store: deps.store }));
  await app.register(fleetRoutes({ store: deps.store, fleet: deps.fleet ?? "fleet" }));
  await app.register(dashboardRoutes);
  if (deps.callbacks) {
    // A session completed by its sandbox ends here: counted in the api's /metrics.
    const metrics = { sessionsEnded: sessionsEndedCounter(deps.registry) };
    await app.register(
      callbackRoutes({
        store: deps.store,
        bus: deps.bus,
        logger: deps.logger,
        provider: deps.callbacks.provider,
        tokens: deps.callbacks.tokens,
        metrics,
      }),
    );
  }
  // The stages' queues and throughput, read from the bus when /metrics is scraped.
  consumerMetrics(deps.registry, () => deps.bus.consumerBacklogs());
  await app.register(healthRoutes({ store: deps.store, bus: deps.bus, registry: deps.registry }));
  app.get("/openapi.json", { schema: { hide: true }, config: { access: "public" } }, async () => app.swagger());
  // The bus's contract beside the HTTP one, under the same rules.
  const asyncApi = asyncApiDocument();
  app.get("/asyncapi.json", { schema: { hide: true }, config: { access: "public" } }, async () => asyncApi);
  return app;
}
