// Container health check (Dockerfile HEALTHCHECK, or an exec probe): asks the running service's own
// route on loopback and exits 0 when it answers 200. The service is the argument, else the one PID 1
// runs (the entrypoint execs `node /app/services/<name>/dist/main.js`).
import { readFileSync } from "node:fs";

const ROUTES = {
  api: { port: process.env.API_PORT || "8080", path: "/readyz" },
  gateway: { port: process.env.GATEWAY_PORT || "8090", path: "/readyz" },
  spawner: { port: process.env.SPAWNER_METRICS_PORT, path: "/metrics" },
  poller: { port: process.env.POLLER_METRICS_PORT, path: "/metrics" },
  watchdog: { port: process.env.WATCHDOG_METRICS_PORT, path: "/metrics" },
};

function runningService() {
  const argv = readFileSync("/proc/1/cmdline", "utf8").split("\0");
  return argv.map((a) => /\/services\/([a-z]+)\/dist\/main\.js$/.exec(a)?.[1]).find(Boolean);
}

const service = process.argv[2] ?? runningService();
const route = service ? ROUTES[service] : undefined;
if (!route) {
  console.error(`healthcheck: unknown service '${service}'`);
  process.exit(2);
}
if (!route.port || route.port === "0") {
  // No metrics port: the process being up (PID 1) is all there is to check.
  console.error(`healthcheck: ${service} serves no health route: set its metrics port`);
  process.exit(0);
}
try {
  const res = await fetch(`http://127.0.0.1:${route.port}${route.path}`, { signal: AbortSignal.timeout(4_000) });
  process.exit(res.status === 200 ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${service}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
