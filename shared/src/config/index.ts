import { TelemetryEnv } from "../telemetry/index.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { FleetError } from "../errors/index.js";
import { CallbackKeys } from "../auth/callback-tokens.js";
import { ProjectId } from "../contracts/index.js";
import { SimCreateFaults } from "./simulated.js";

export { SimCreateFault, SimCreateFaults, SimFaultKind } from "./simulated.js";

/**
 * Config pieces shared by every service. Each service composes its own schema from these and calls
 * `loadConfig(schema, process.env)` in main.ts only; adapters receive their slice as plain objects.
 */
const namespace = z
  .string()
  .regex(/^[a-z0-9_-]*$/, "lower-case letters, digits, '_' and '-' only")
  .max(32)
  .default("");

export const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");

export const busEnv = z.object({
  /** One server, or the nodes of a cluster separated by commas (the client reconnects across them). */
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** Replicas of every stream and consumer the fleet provisions; unset: 3 on a cluster, 1 on a lone server. */
  FLEET_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).optional(),
  /** This service's NATS user and password, when the server requires them (see docs/bus.md). */
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().min(1).optional(),
  FLEET_NAMESPACE: namespace,
});

export const storeEnv = z.object({
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://")
    .default("mongodb://127.0.0.1:27017/"),
  FLEET_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/)
    .default("fleet"),
  /** Connections each service opens to the store at most; more requests wait in the driver, in order. */
  FLEET_STORE_POOL: z.coerce.number().int().min(1).max(1_000).default(8),
  /** A replica set's settings (docs/guarantees.md); unset: the URI's options, else the driver's defaults. */
  FLEET_STORE_WRITE_CONCERN: z.union([z.literal("majority"), z.coerce.number().int().min(0).max(50)]).optional(),
  FLEET_STORE_WRITE_TIMEOUT_MS: z.coerce.number().int().min(1).max(600_000).optional(),
  FLEET_STORE_READ_CONCERN: z.enum(["local", "majority"]).optional(),
  FLEET_STORE_READ_PREFERENCE: z
    .enum(["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"])
    .optional(),
  FLEET_STORE_RETRY_WRITES: z
    .enum(["0", "1"])
    .transform((v) => v === "1")
    .optional(),
  FLEET_STORE_SOCKET_TIMEOUT_MS: z.coerce.number().int().min(1).max(600_000).optional(),
  FLEET_STORE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1).max(600_000).optional(),
  /** 1: accept a FerretDB without the fleet's build, whose conditional updates are not atomic (logged loudly). */
  FLEET_STORE_ALLOW_UNPATCHED: z
    .enum(["0", "1"])
    .default("0")
    .transform((v) => v === "1"),
});

export const baseEnv = busEnv
  .extend(storeEnv.shape)
  .extend(TelemetryEnv.shape)
  .extend({
    LOG_LEVEL: logLevel,
    FLEET_SHUTDOWN_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
    /** How long a message may go without an ack or a progress heartbeat before another instance gets it. */
    FLEET_ACK_WAIT_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
    /**
     * The same for a session's watch (session.running, held for the session's whole life): how soon
     * another poller takes a session over after its poller died. Its holder heartbeats every quarter
     * of it and stops acting on the session when a heartbeat has not been confirmed in time.
     */
    FLEET_WATCH_ACK_WAIT_MS: z.coerce.number().int().min(2_000).max(600_000).default(6_000),
    /**
     * The watch lease on a running session's document (docs/guarantees.md §9): its poller renews it
     * at half its length and stops acting on the session once it lapsed; the watchdog publishes
     * session.running again for a running session whose lease lapsed (plus WATCHDOG_LEASE_GRACE_MS).
     * A backstop for a watch message the bus lost; a session shorter than half of it costs no write.
     */
    FLEET_WATCH_LEASE_MS: z.coerce.number().int().min(2_000).max(3_600_000).default(60_000),
    /** Deliveries of one message before it is dead-lettered. */
    FLEET_MAX_DELIVER: z.coerce.number().int().min(1).max(100).default(10),
    /** Address the /metrics endpoints of spawner, poller, watchdog and gateway listen on (0.0.0.0 in a container). */
    FLEET_METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  });

export type BaseEnv = z.infer<typeof baseEnv>;

/** The store's replica set settings from the environment (only those given). */
export function storeReplicaSettings(env: z.infer<typeof storeEnv>) {
  return {
    writeConcern: env.FLEET_STORE_WRITE_CONCERN,
    writeConcernTimeoutMs: env.FLEET_STORE_WRITE_TIMEOUT_MS,
    readConcern: env.FLEET_STORE_READ_CONCERN,
    readPreference: env.FLEET_STORE_READ_PREFERENCE,
    retryWrites: env.FLEET_STORE_RETRY_WRITES,
    socketTimeoutMs: env.FLEET_STORE_SOCKET_TIMEOUT_MS,
    connectTimeoutMs: env.FLEET_STORE_CONNECT_TIMEOUT_MS,
  };
}

/**
 * The projects this fleet serves: a comma-separated list, or `*` (the default) for any. A request
 * for another project is refused by the api (404) and dead-lettered by the spawner.
 */
export const projectsEnv = z.object({
  FLEET_PROJECTS: z
    .string()
    .default("*")
    .transform((v) =>
      v.trim() === "*"
        ? "*"
        : v
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean),
    )
    .pipe(z.union([z.literal("*"), z.array(ProjectId).min(1, "name at least one project, or * for any")])),
});
export type KnownProjects = z.infer<typeof projectsEnv>["FLEET_PROJECTS"];

export function isKnownProject(known: KnownProjects, projectId: string): boolean {
  return known === "*" || known.includes(projectId);
}

export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new FleetError("config", `invalid configuration:\n${z.prettifyError(result.error)}`, {
      details: result.error.issues,
    });
  }
  return result.data;
}

/** For main.ts: print what is wrong with the environment and exit 1. */
export function loadConfigOrExit<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}

/** Where sandboxes run. */
export const sandboxEnv = z.object({
  /** `simulated` is for benchmarks only: no real sandbox or agent (see the FLEET_SIM_* settings). */
  SANDBOX_PROVIDER: z.enum(["local", "e2b", "simulated"]).default("local"),
  /** Local provider: where sandboxes live and are registered (shared by every fleet process on the host). */
  FLEET_SANDBOX_DIR: z.string().min(1).default("/tmp/fleet-sandboxes"),
  /** "none" runs agents unisolated, as the fleet's user on the host's network: development only. */
  FLEET_SANDBOX_ISOLATION: z.enum(["bubblewrap", "none"]).default("bubblewrap"),
  /** Host folders local sandboxes may read under bubblewrap besides the system ones (colon-separated). */
  FLEET_SANDBOX_READABLE: z
    .string()
    .default("")
    .transform((v) => v.split(":").filter(Boolean))
    .pipe(z.array(z.string().startsWith("/", "absolute paths only"))),
  E2B_API_KEY: z.string().min(1).optional(),
  E2B_TEMPLATE: z.string().min(1).default("opencode"),
  /** The longest timeout the E2B plan allows one sandbox create or extension (Hobby: 1 h, Pro: 24 h). */
  E2B_MAX_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(3_600_000),
  /** E2B's control plane; unset: E2B's own (api.<E2B_DOMAIN>). A local E2B (devtools/src/e2b) sets it. */
  E2B_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** One URL for all traffic to sandboxes (the SDK routes by E2b-Sandbox-Id/-Port headers). */
  E2B_SANDBOX_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** A sandbox port's URL with {sandboxId} and {port}; unset: https://<port>-<id>.<domain>. */
  E2B_PORT_URL: z
    .string()
    .refine((t) => t.includes("{sandboxId}") && t.includes("{port}"), "needs {sandboxId} and {port}")
    .optional(),
  /** E2B's domain (default e2b.app). */
  E2B_DOMAIN: z.string().min(1).optional(),
  /** The agent server binary (local provider); default: the one shipped in node_modules. */
  OPENCODE_BIN: z.string().min(1).optional(),
  /** Label on every sandbox of this fleet, so fleets sharing a provider account never reap each other. */
  FLEET_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .default("fleet"),
  /**
   * SANDBOX_PROVIDER=simulated, for benchmarks only. State directory of the simulated sandboxes,
   * shared by every fleet process on the host and read by the benchmark afterwards.
   */
  FLEET_SIM_DIR: z.string().min(1).default(join(tmpdir(), "fleet-sim")),
  /** Simulated: time each sandbox create takes. */
  FLEET_SIM_CREATE_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  /** Simulated: tool events of each scripted agent run (fixed per sandbox when the spawner creates it). */
  FLEET_SIM_EVENTS: z.coerce.number().int().min(0).max(1_000).default(5),
  /** Simulated: spacing of those events; 0 emits them all at once, so the agent is idle at its prompt. */
  FLEET_SIM_EVENT_MS: z.coerce.number().int().min(0).max(3_600_000).default(0),
  /** Simulated: `off` keeps the agent's event stream silent, as if cut (pollers then rely on status checks). */
  FLEET_SIM_EVENT_STREAM: z.enum(["on", "off"]).default("on"),
  /**
   * Simulated: sandbox creates that fail on purpose, per project, for tests of provider errors:
   * `p1=rate_limit:2,p2=transient,p3=permanent` (attempts 1..n fail; permanent ones always).
   */
  FLEET_SIM_CREATE_FAULTS: SimCreateFaults,
  /** Simulated: the account's concurrent-sandbox limit, answered like E2B's (429 with Retry-After); 0 = none. */
  FLEET_SIM_QUOTA: z.coerce.number().int().min(0).max(100_000).default(0),
  /** Simulated: the longest timeout one create or setTimeout may ask for, like E2B's plans; 0 = none. */
  FLEET_SIM_MAX_TIMEOUT_MS: z.coerce.number().int().min(0).max(86_400_000).default(0),
  /** Simulated: the Retry-After of its 429s (quota and rate_limit faults). */
  FLEET_SIM_RETRY_AFTER_MS: z.coerce.number().int().min(0).max(600_000).default(1_000),
});
export type SandboxEnv = z.infer<typeof sandboxEnv>;

/** Secret from which each session's agent password is derived (shared by spawner, poller, watchdog). */
export const agentEnv = z.object({
  FLEET_AGENT_SECRET: z.string().min(32, "at least 32 characters, e.g. from: openssl rand -base64 32"),
});

/** The model the agents talk to: any OpenAI-compatible endpoint. */
export const modelEnv = z.object({
  FLEET_MODEL_URL: z.url({ protocol: /^https?$/ }),
  FLEET_MODEL: z.string().min(1).max(200).default("scripted-demo"),
  FLEET_MODEL_API_KEY: z.string().min(1).default("none"),
  /** Comma-separated model ids tried after FLEET_MODEL. */
  FLEET_FALLBACK_MODELS: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    ),
});

/** Sandbox callbacks: signing keys (`kid:secret,…`, the first signs) and the URL sandboxes call. */
export const callbackEnv = z.object({
  FLEET_CALLBACK_KEYS: CallbackKeys.optional(),
  FLEET_CALLBACK_URL: z.url().optional(),
});

/**
 * The model gateway, as the spawner uses it: where agents reach it (a URL ending in /v1) and the keys
 * that sign their tokens (`kid:secret,…`, the first signs; the gateway holds the same list). With
 * both set, agents get the gateway's URL and a token instead of the model's URL and key.
 */
export const gatewayClientEnv = z.object({
  FLEET_GATEWAY_URL: z.url({ protocol: /^https?$/ }).optional(),
  FLEET_GATEWAY_KEYS: CallbackKeys.optional(),
});
