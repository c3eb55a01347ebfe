import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { createApi } from "./app.js";
import { ApiConfig } from "./config.js";

const config = loadConfigOrExit(ApiConfig, process.env);
const rt = await startRuntime("api", config);
const app = await createApi({
  store: rt.store,
  bus: rt.bus,
  logger: rt.logger,
  registry: rt.metrics.registry,
  auth: { mode: config.API_AUTH },
  submitsPerMinute: config.API_SUBMITS_PER_MINUTE,
  followers: { perKey: config.API_FOLLOWERS_PER_KEY, perProcess: config.API_FOLLOWERS_MAX },
  projects: config.FLEET_PROJECTS,
  fleet: config.FLEET_NAME,
  ...(config.FLEET_CALLBACK_KEYS
    ? {
        callbacks: {
          tokens: { keys: config.FLEET_CALLBACK_KEYS },
          provider: await createSandboxProvider(config, rt.logger),
        },
      }
    : {}),
});
rt.closer.add("http", () => app.close());
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
const address = await app.listen({ host: config.API_HOST, port: config.API_PORT });
rt.logger.info({ address }, "api listening");
// One line on stdout for whoever started us (./fleet up, tests) to find the address.
process.stdout.write(`api listening on ${address}\n`);
