import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "@fleet/shared/errors";
import { reachableSandboxRoot } from "@fleet/shared/sandbox";
import { repoRoot } from "./paths.js";
import { freePort } from "./ports.js";
import { logTail, ownLog, startProcess, type ManagedProcess } from "./process.js";

export type ServiceName = "api" | "spawner" | "poller" | "watchdog" | "gateway";

export interface FleetProcessOptions {
  natsUrl: string;
  mongoUri: string;
  /** Folder for service logs; sandboxes go to <dir>/sandboxes unless FLEET_SANDBOX_DIR is in `env`. */
  dataDir: string;
  agentSecret: string;
  modelUrl: string;
  database?: string;
  namespace?: string;
  /** Extra environment for every service (e.g. FLEET_MODEL, LOG_LEVEL). */
  env?: Record<string, string>;
  /** Outlive the starter (for `./fleet up`); otherwise they die with it. */
  persistent?: boolean;
  /** NATS users by role, when the server requires them; each service gets its own. */
  natsUsers?: ReadonlyArray<{ role: string; user: string; password: string }>;
  readyTimeoutMs?: number;
  /** Extra node flags before the script (e.g. --cpu-prof for a profile). */
  nodeArgs?: string[];
}

export interface RunningService {
  name: ServiceName;
  process: ManagedProcess;
  /** The api's base URL; the gateway's, ending in /v1. */
  url?: string;
}

/** Each service prints one line when it is ready to take work: `<name> ready …`, or `<api|gateway> listening on <url>`. */
async function waitForReadyLine(
  proc: ManagedProcess,
  name: ServiceName,
  timeoutMs: number,
): Promise<string | undefined> {
  const until = Date.now() + timeoutMs;
  const pattern =
    name === "api" || name === "gateway"
      ? new RegExp(`${name} listening on (\\S+)`)
      : new RegExp(`^${name} ready`, "m");
  while (Date.now() < until) {
    const text = ownLog(proc);
    const m = pattern.exec(text);
    if (m) return m[1];
    if (!proc.running)
      throw new FleetError(
        "infra",
        `${name} exited during start-up; its log (${proc.logFile}) ends with:\n${logTail(proc.logFile)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.stop();
  throw new FleetError("infra", `${name} did not become ready in ${timeoutMs} ms; see ${proc.logFile}`);
}

/** Starts one instance of a service as its own Node process and waits until it is ready. */
export async function startService(
  name: ServiceName,
  options: FleetProcessOptions,
  index = 0,
): Promise<RunningService> {
  const root = repoRoot();
  const main = join(root, "services", name, "dist", "main.js");
  if (!existsSync(main)) throw new FleetError("infra", `${main} is missing: build first (npx tsc -b)`);
  mkdirSync(options.dataDir, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    NATS_URL: options.natsUrl,
    MONGODB_URI: options.mongoUri,
    FLEET_DB: options.database ?? "fleet",
    FLEET_NAMESPACE: options.namespace ?? "",
    FLEET_AGENT_SECRET: options.agentSecret,
    FLEET_MODEL_URL: options.modelUrl,
    FLEET_SANDBOX_DIR: reachableSandboxRoot(join(options.dataDir, "sandboxes")),
    LOG_LEVEL: "info",
    ...(name === "api" ? { API_PORT: String(await freePort()) } : {}),
    ...(name === "gateway" ? { GATEWAY_PORT: String(await freePort()) } : {}),
    ...natsCredentials(options.natsUsers, name),
    ...options.env,
  };
  const proc = startProcess({
    name: `${name}-${index}`,
    command: process.execPath,
    args: [...(options.nodeArgs ?? []), main],
    env,
    cwd: root,
    logFile: join(options.dataDir, `${name}-${index}.log`),
    persistent: options.persistent ?? false,
  });
  const url = await waitForReadyLine(proc, name, options.readyTimeoutMs ?? 30_000);
  return { name, process: proc, ...(url ? { url } : {}) };
}

function natsCredentials(users: FleetProcessOptions["natsUsers"], role: ServiceName): Record<string, string> {
  const u = users?.find((x) => x.role === role);
  return u ? { NATS_USER: u.user, NATS_PASSWORD: u.password } : {};
}
