import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, inject } from "vitest";
import type { ServiceName } from "../../devtools/src/infra/index.js";
import {
  scenarioByName,
  startScriptedModel,
  type ScenarioInput,
  type ScriptedModel,
} from "../../devtools/src/model/index.js";
import { SimulatedSandboxProvider } from "../../devtools/src/simulated/index.js";
import { type LocalE2B, startLocalE2B } from "../../devtools/src/e2b/index.js";
import type { MongoSessionStore, SandboxProvider, Session } from "../../shared/src/index.js";
import { resolveOpencodeBinary } from "../../shared/src/agent/opencode/index.js";
import { natsServers, type NatsUser } from "../../shared/src/bus/index.js";
import { E2BSandboxProvider } from "../../shared/src/sandbox/e2b/index.js";
import { isProcessRunning, LocalSandboxProvider } from "../../shared/src/sandbox/local/index.js";
import { deleteStreams, dropDatabase, eventually, logger, openStore, runAll, uniqueNamespace } from "./fixtures.js";
import { api, startTestFleet, type TestFleet } from "./fleet.js";

const ENDED: readonly string[] = ["completed", "failed", "cancelled"];
/** The spawner's config requires a model URL; a simulated agent never calls it. */
const UNUSED_MODEL_URL = "http://127.0.0.1:9/v1";
/** What the fixture reads from the running fleet each time it is asked. */
const FLEET_FIELDS = [
  "dir",
  "sandboxDir",
  "agentSecret",
  "callbackKeys",
  "gatewayKeys",
  "apiUrl",
  "gatewayUrl",
  "apiKey",
  "services",
] as const;

/** Servers a test file starts for its fleet; each service connects to NATS as its role's user when `natsUsers` is given. */
export interface OwnInfra {
  natsUrl?: string;
  mongoUri?: string;
  natsUsers?: NatsUser[];
}

export interface FleetFixtureOptions {
  /** Start of the fleet's namespace (also its database's name), made unique per call. */
  prefix: string;
  /** A scripted model for the agents: the scenario it plays (or the name of one of SCENARIOS) and those by model id. */
  model?: {
    scenario: ScenarioInput | string;
    byModel?: Record<string, ScenarioInput>;
    /** The key the scripted model requires (401 without it), as a provider would. */
    apiKey?: string;
  };
  /** Sandboxes and agents of the simulated provider, kept in a folder made and removed here. */
  simulated?: boolean;
  /**
   * Where real sandboxes run: the local provider (default), or `e2b`: the fleet's e2b provider
   * (SANDBOX_PROVIDER=e2b) on a local E2B started here (devtools/src/e2b), stopped with the fleet.
   */
  sandboxes?: SandboxKind;
  services: Array<[ServiceName, Record<string, string>?]>;
  /** For every service, over the fixture's own settings. */
  env?: Record<string, string>;
  /**
   * Starts servers of the file's own, before anything else; the run's shared server stands in for
   * any it does not name. Only what is on a shared server is cleaned up afterwards.
   */
  infra?: (namespace: string) => Promise<OwnInfra>;
  /** Opens `store` (the fleet's database) and `nc` (its NATS server) once the fleet runs. */
  store?: boolean;
  nats?: boolean;
  /** What every `submit` sends unless its body says otherwise. */
  submitDefaults?: Record<string, unknown>;
  /** Starts nothing: the file's test says why it cannot run. */
  skip?: boolean;
  /** Bound of the whole setup (default 2 minutes). */
  timeoutMs?: number;
  /** Ends the file's own resources, last, also when the setup failed midway. */
  teardown?: () => Promise<void> | void;
}

/**
 * The running fleet (its members answer once the setup ran, and throw before), with what the
 * tests around it need: its model, store, NATS connection and sandbox provider, and the session
 * calls every test makes through its api.
 */
/** The real sandbox providers the session tests run on. */
export type SandboxKind = "local" | "e2b";
export const SANDBOX_KINDS: readonly SandboxKind[] = ["local", "e2b"];

export interface FleetFixture<P extends SandboxProvider = SandboxProvider> extends TestFleet {
  readonly model: ScriptedModel;
  readonly store: MongoSessionStore;
  readonly nc: NatsConnection;
  /** The fleet's sandboxes: local ones in `sandboxDir`, or the simulated ones in `simDir`. */
  readonly provider: P;
  readonly simDir: string;
  /** Submits a session over HTTP and gives its id. */
  submit(body?: Record<string, unknown>): Promise<string>;
  /** The session document, as the api serves it. */
  get(id: string): Promise<Session>;
  /** The session once it is completed, failed or cancelled. */
  ended(id: string, timeoutMs?: number, intervalMs?: number): Promise<Session>;
  /** The session once it is running. */
  running(id: string, timeoutMs?: number, intervalMs?: number): Promise<Session>;
  /** Waits until no sandbox of the session is alive. */
  noSandbox(id: string, timeoutMs?: number, intervalMs?: number): Promise<void>;
  /** Which real provider the fleet's sandboxes come from. */
  readonly sandboxKind: SandboxKind;
  /** The local E2B the fleet's sandboxes run on (options.sandboxes: "e2b"). */
  readonly e2b: LocalE2B;
  /** The host folder of a sandbox's workspace (local and local-E2B sandboxes both live on this host). */
  workspaceOf(sandboxId: string): string;
  /**
   * Ends a running session's sandbox behind the fleet's back: SIGKILL to its agent server (local),
   * or the local E2B killing the sandbox, as a lost E2B host would.
   */
  killSandboxUnderAgent(session: Session): Promise<void>;
}

/**
 * One fleet for the enclosing describe block (or file): started in a `beforeAll`, stopped and
 * cleaned up in an `afterAll`, both registered here.
 */
export function useTestFleet(
  options: FleetFixtureOptions & { simulated: true },
): FleetFixture<SimulatedSandboxProvider>;
export function useTestFleet(
  options: FleetFixtureOptions & { simulated?: false; sandboxes?: "local" },
): FleetFixture<LocalSandboxProvider>;
export function useTestFleet(options: FleetFixtureOptions & { simulated?: false }): FleetFixture;
export function useTestFleet(options: FleetFixtureOptions): FleetFixture {
  const namespace = uniqueNamespace(options.prefix);
  let fleet: TestFleet | undefined;
  let model: ScriptedModel | undefined;
  let store: MongoSessionStore | undefined;
  let nc: NatsConnection | undefined;
  let simDir: string | undefined;
  let provider: SandboxProvider | undefined;
  let own: OwnInfra | undefined;
  let e2b: LocalE2B | undefined;
  const sandboxKind: SandboxKind = options.sandboxes ?? "local";

  const present = <T>(value: T | undefined, missing: string): T => {
    if (value === undefined) throw new Error(`the test fleet ${missing}`);
    return value;
  };
  const started = (): TestFleet => present(fleet, "did not start");
  const sandboxes = (): SandboxProvider => {
    provider ??= options.simulated
      ? new SimulatedSandboxProvider({ dir: present(simDir, "has no simulated sandboxes yet") }, logger)
      : sandboxKind === "e2b"
        ? e2bProvider(present(e2b, "has no local E2B"))
        : new LocalSandboxProvider({ rootDir: started().sandboxDir }, logger);
    return provider;
  };

  beforeAll(async () => {
    if (options.skip) return;
    own = (await options.infra?.(namespace)) ?? {};
    const infra = {
      natsUrl: own.natsUrl ?? inject("natsUrl"),
      mongoUri: own.mongoUri ?? inject("mongoUri"),
      ...(own.natsUsers ? { natsUsers: own.natsUsers } : {}),
    };
    if (options.simulated) simDir = mkdtempSync(join(tmpdir(), `fleet-sim-${options.prefix}-`));
    // The agent's binary is readable in local E2B sandboxes, as a template would hold it.
    if (sandboxKind === "e2b")
      e2b = await startLocalE2B({ readable: [dirname(dirname(resolveOpencodeBinary()))] }, logger);
    if (options.model) {
      const { scenario, byModel, apiKey } = options.model;
      model = await startScriptedModel({
        port: 0,
        scenario:
          typeof scenario === "string" ? present(scenarioByName(scenario), `has no scenario ${scenario}`) : scenario,
        ...(byModel ? { byModel } : {}),
        ...(apiKey ? { apiKey } : {}),
        logger,
      });
    }
    fleet = await startTestFleet({
      namespace,
      modelUrl: model?.url ?? UNUSED_MODEL_URL,
      infra,
      env: {
        ...(simDir ? { SANDBOX_PROVIDER: "simulated", FLEET_SIM_DIR: simDir } : {}),
        ...(e2b ? { SANDBOX_PROVIDER: "e2b", ...e2b.env } : {}),
        ...options.env,
      },
      services: options.services,
    });
    // All the network an E2B sandbox needs here: the model, the gateway and the fleet's callbacks.
    e2b?.setEgress([model?.url, fleet.apiUrl, fleet.gatewayUrl].filter((u): u is string => Boolean(u)));
    if (options.store) store = await openStore(namespace, infra.mongoUri);
    if (options.nats) nc = await connect({ servers: natsServers(infra.natsUrl) });
  }, options.timeoutMs ?? 120_000);

  afterAll(async () => {
    // Every step runs, whatever failed before it (in the setup or here); the first error is raised.
    const steps: Array<() => unknown> = [
      () => fleet?.stop(),
      // A session cut short by the stop leaves its agent server behind.
      () => e2b?.stop(),
      async () => {
        if (!fleet || options.simulated || e2b) return;
        const local = sandboxes();
        for (const s of await local.list()) await local.kill(s.id);
      },
      () => model?.close(),
      () => nc?.close(),
      () => store?.close(),
      async () => {
        if (!own) return;
        if (!own.natsUrl) await deleteStreams(namespace);
        if (!own.mongoUri) await dropDatabase(namespace);
      },
      () => simDir && rmSync(simDir, { recursive: true, force: true }),
      () => options.teardown?.(),
    ];
    await runAll(steps);
  });

  const until = (id: string, done: (s: Session) => boolean, timeoutMs: number, intervalMs: number) =>
    eventually(
      async () => {
        const s = await fixture.get(id);
        return done(s) ? s : undefined;
      },
      timeoutMs,
      intervalMs,
    );
  const members: Omit<FleetFixture, (typeof FLEET_FIELDS)[number]> = {
    namespace,
    database: namespace,
    add: (name, env) => started().add(name, env),
    logsOf: (name) => started().logsOf(name),
    stop: () => started().stop(),
    get model() {
      return present(model, "has no scripted model (options.model)");
    },
    get store() {
      return present(store, "opened no store (options.store)");
    },
    get nc() {
      return present(nc, "opened no NATS connection (options.nats)");
    },
    get provider() {
      return sandboxes();
    },
    get simDir() {
      return present(simDir, "has no simulated sandboxes (options.simulated)");
    },
    submit: async (body = {}) =>
      (await api<{ sessionId: string }>(fixture, "POST", "/v1/sessions", { ...options.submitDefaults, ...body })).body
        .sessionId,
    get: async (id) => (await api<Session>(fixture, "GET", `/v1/sessions/${id}`)).body,
    ended: (id, timeoutMs = 90_000, intervalMs = 25) =>
      until(id, (s) => ENDED.includes(s.status), timeoutMs, intervalMs),
    running: (id, timeoutMs = 90_000, intervalMs = 25) =>
      until(id, (s) => s.status === "running", timeoutMs, intervalMs),
    noSandbox: async (id, timeoutMs = 15_000, intervalMs = 25) => {
      await eventually(async () => (await sandboxes().list({ sessionId: id })).length === 0, timeoutMs, intervalMs);
    },
    sandboxKind,
    get e2b() {
      return present(e2b, "has no local E2B (options.sandboxes)");
    },
    workspaceOf: (sandboxId) => join(e2b ? e2b.rootDir : started().sandboxDir, sandboxId, "workspace"),
    killSandboxUnderAgent: async (session) => {
      const sandbox = present(session.sandbox, "a sandbox of the session");
      if (e2b) {
        if (!(await e2b.killSandbox(sandbox.id))) throw new Error(`sandbox ${sandbox.id} was not running`);
        return;
      }
      const pid = present(sandbox.agentPid, "the agent's pid");
      if (!isProcessRunning(pid)) throw new Error(`agent ${pid} was not running`);
      process.kill(pid, "SIGKILL");
    },
  };
  const fixture: FleetFixture = delegate(started, FLEET_FIELDS, members);
  return fixture;
}

function e2bProvider(local: LocalE2B): E2BSandboxProvider {
  return new E2BSandboxProvider(
    {
      apiKey: local.apiKey,
      template: "opencode",
      apiUrl: local.apiUrl,
      sandboxUrl: local.sandboxUrl,
      portUrl: local.portUrl,
    },
    logger,
  );
}

/** `base` with getters that read `keys` from `source()` when used, not before. */
function delegate<T, K extends keyof T, B extends object>(
  source: () => T,
  keys: readonly K[],
  base: B,
): B & Pick<T, K> {
  for (const key of keys) Object.defineProperty(base, key, { enumerable: true, get: () => source()[key] });
  return base as B & Pick<T, K>;
}
