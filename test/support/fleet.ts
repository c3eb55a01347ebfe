import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { FleetHttpClient } from "../../client/src/index.js";
import { startService, type RunningService, type ServiceName } from "../../devtools/src/infra/index.js";
import type { NatsUser } from "../../shared/src/bus/index.js";
import { MongoSessionStore, createLogger, newApiKey } from "../../shared/src/index.js";

export interface TestFleet {
  namespace: string;
  database: string;
  dir: string;
  sandboxDir: string;
  agentSecret: string;
  /** Signing keys of sandbox callback tokens (`kid:secret`). */
  callbackKeys: string;
  /** Signing keys of model gateway tokens (`kid:secret`). */
  gatewayKeys: string;
  apiUrl: string;
  /** The model gateway's base URL (ending in /v1), when the fleet runs one. */
  gatewayUrl: string;
  /** A key for all projects, made in the fleet's database. */
  apiKey: string;
  services: RunningService[];
  add(name: ServiceName, env?: Record<string, string>): Promise<RunningService>;
  /** Every service log, concatenated. */
  logsOf(name: ServiceName): string[];
  stop(): Promise<void>;
}

/**
 * The fleet's services as separate processes, on the run's shared nats-server and store, in a
 * namespace and database of their own.
 */
export async function startTestFleet(options: {
  namespace: string;
  modelUrl: string;
  /** Servers of the test's own; default: the run's shared ones. */
  infra?: { natsUrl: string; mongoUri: string; natsUsers?: NatsUser[] };
  env?: Record<string, string>;
  services: Array<[ServiceName, Record<string, string>?]>;
}): Promise<TestFleet> {
  const dir = mkdtempSync(join(tmpdir(), `fleet-e2e-${options.namespace}-`));
  // Searchable, so that sandbox users reach their folders in <dir>/sandboxes (its files stay private).
  chmodSync(dir, 0o711);
  const sandboxDir = join(dir, "sandboxes");
  const agentSecret = randomBytes(32).toString("base64url");
  const callbackKeys = `k1:${randomBytes(32).toString("base64url")}`;
  const gatewayKeys = `g1:${randomBytes(32).toString("base64url")}`;
  let apiUrl = "";
  let gatewayUrl = "";
  const services: RunningService[] = [];
  const counts = new Map<ServiceName, number>();
  const add = async (name: ServiceName, env: Record<string, string> = {}): Promise<RunningService> => {
    const index = counts.get(name) ?? 0;
    counts.set(name, index + 1);
    const s = await startService(
      name,
      {
        natsUrl: options.infra?.natsUrl ?? inject("natsUrl"),
        mongoUri: options.infra?.mongoUri ?? inject("mongoUri"),
        dataDir: dir,
        agentSecret,
        modelUrl: options.modelUrl,
        namespace: options.namespace,
        database: options.namespace,
        env: {
          FLEET_SANDBOX_DIR: sandboxDir,
          LOG_LEVEL: "info",
          FLEET_SHUTDOWN_MS: "3000",
          FLEET_CALLBACK_KEYS: callbackKeys,
          ...(apiUrl ? { FLEET_CALLBACK_URL: apiUrl } : {}),
          // A gateway started earlier in the list serves the spawners started after it.
          ...(name === "gateway" || (name === "spawner" && gatewayUrl) ? { FLEET_GATEWAY_KEYS: gatewayKeys } : {}),
          ...(name === "spawner" && gatewayUrl ? { FLEET_GATEWAY_URL: gatewayUrl } : {}),
          ...options.env,
          ...env,
        },
        readyTimeoutMs: 60_000,
        ...(options.infra?.natsUsers ? { natsUsers: options.infra.natsUsers } : {}),
      },
      index,
    );
    services.push(s);
    if (s.url && name === "api" && !apiUrl) apiUrl = s.url;
    if (s.url && name === "gateway" && !gatewayUrl) gatewayUrl = s.url;
    return s;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(services.map((s) => s.process.stop(10_000)));
  };
  let apiKey: string;
  try {
    for (const [name, env] of options.services) await add(name, env);
    const keyStore = await MongoSessionStore.connect(
      { uri: options.infra?.mongoUri ?? inject("mongoUri"), database: options.namespace },
      createLogger({ name: "test", level: "silent" }),
    );
    const made = newApiKey(["*"], "tests");
    await keyStore.saveApiKey(made.record);
    await keyStore.close();
    apiKey = made.key;
  } catch (err) {
    // Nobody else holds the services started so far: they would outlive the run.
    await stop();
    throw err;
  }
  const api = services.find((s) => s.name === "api");
  return {
    namespace: options.namespace,
    database: options.namespace,
    dir,
    sandboxDir,
    agentSecret,
    callbackKeys,
    gatewayKeys,
    apiUrl: api?.url ?? "",
    gatewayUrl,
    apiKey,
    services,
    add,
    logsOf: (name) => services.filter((s) => s.name === name).map((s) => readFileSync(s.process.logFile, "utf8")),
    stop,
  };
}

export async function api<T>(
  fleet: Pick<TestFleet, "apiUrl" | "apiKey">,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(new URL(path, fleet.apiUrl), {
    method,
    headers: {
      authorization: `Bearer ${fleet.apiKey}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
}

/** Reads the api's server-sent log stream of a session until its `end` event. */
export async function readSse(
  fleet: Pick<TestFleet, "apiUrl" | "apiKey">,
  sessionId: string,
  onLine?: (l: { seq: number; line: string }) => void,
): Promise<{ lines: Array<{ seq: number; line: string }>; end: { status: string } }> {
  const lines: Array<{ seq: number; line: string }> = [];
  for await (const ev of new FleetHttpClient({ baseUrl: fleet.apiUrl, apiKey: fleet.apiKey }).follow(sessionId)) {
    if (ev.type === "end") return { lines, end: ev.end };
    lines.push(ev.line);
    onLine?.(ev.line);
  }
  throw new Error("log stream ended without an end event");
}
