import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, inject } from "vitest";
import { createApi, type ApiDeps } from "../../services/api/src/app.js";
import { newApiKey, type Bus, type MongoSessionStore, type NatsBusConfig } from "../../shared/src/index.js";
import { createMetrics } from "../../shared/src/metrics/index.js";
import { cleanup, handle, logger, openBus, openStore, present, runAll, uniqueNamespace } from "./fixtures.js";

export interface BusFixtureOptions {
  /** Start of the namespace: the prefix of its streams and the name of its database, made unique per call. */
  prefix: string;
  /** Connections to the store at most (default: the driver's). */
  maxPoolSize?: number;
  /**
   * The bus's settings over the fixture's, read when it opens (so they may name a server the file
   * starts before the fixture); `false` opens no bus.
   */
  bus?: Partial<NatsBusConfig> | (() => Partial<NatsBusConfig>) | false;
  /** Whether the bus records dead letters in the store (default true). */
  deadLetters?: boolean;
  /** Opens `nc`, a plain connection to the run's nats-server. */
  nats?: boolean;
}

/** The store, bus and NATS connection of the enclosing describe; members throw until they are open. */
export interface BusFixture {
  readonly namespace: string;
  readonly store: MongoSessionStore;
  readonly bus: Bus;
  readonly nc: NatsConnection;
}

/**
 * The run's store and nats-server in a namespace (streams and database) of the enclosing describe's
 * own: opened and provisioned in a `beforeAll`, closed, deleted and dropped in an `afterAll`.
 */
export function useBus(options: BusFixtureOptions): BusFixture {
  const namespace = uniqueNamespace(options.prefix);
  let store: MongoSessionStore | undefined;
  let bus: Bus | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    const opened = await openStore(
      namespace,
      inject("mongoUri"),
      options.maxPoolSize ? { maxPoolSize: options.maxPoolSize } : {},
    );
    store = opened;
    if (options.bus !== false) {
      const config = typeof options.bus === "function" ? options.bus() : options.bus;
      bus = await openBus(namespace, {
        ...(options.deadLetters === false ? {} : { store: opened }),
        ...(config ? { config } : {}),
      });
      await bus.provision();
    }
    if (options.nats) nc = await connect({ servers: inject("natsUrl") });
  });
  afterAll(() =>
    runAll([() => bus?.close(), () => nc?.close(), () => store?.close(), () => cleanup(namespace, namespace)]),
  );
  return {
    namespace,
    store: handle("store", () => store),
    bus: handle("bus", () => bus),
    get nc() {
      return present(nc, "the test's NATS connection (options.nats)");
    },
  };
}

/** What an api gets besides the store, the bus, the logger and its metrics. */
export type ApiOptions = Omit<ApiDeps, "store" | "bus" | "logger" | "registry">;

export interface ApiFixtureOptions extends BusFixtureOptions {
  api?: ApiOptions;
  /** A bus of the file's own for the api (a NATS user of its server, say), in place of the fixture's; closed by its owner. */
  apiBus?: () => Promise<Bus>;
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

/** An in-process api over the fixture's store and bus, listening on an ephemeral port, with a key for every project. */
export interface ApiFixture extends BusFixture {
  readonly app: FastifyInstance;
  /** The api's URL, without a trailing slash. */
  readonly base: string;
  /** An admin key (every project), saved in the store. */
  readonly key: string;
  /** The admin key's authorization header. */
  readonly auth: { authorization: string };
  /** A request with the admin key (a body other than a string is sent as JSON), answered with its parsed body. */
  call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiAnswer<T>>;
  /** Another api over the same store and bus, not listening yet; closed by the caller. */
  create(options?: ApiOptions): Promise<FastifyInstance>;
  /** Another api over the same store and bus, listening on an ephemeral port; closed by the caller. */
  listen(options?: ApiOptions): Promise<{ app: FastifyInstance; url: string }>;
}

/** `useBus`'s store and bus with an api over them: started after them, closed before them. */
export function useApi(options: ApiFixtureOptions): ApiFixture {
  const fixture = useBus({ ...options, ...(options.apiBus ? { bus: false } : {}) });
  let apiBus: Bus | undefined;
  let app: FastifyInstance | undefined;
  let base: string | undefined;
  let key: string | undefined;
  const create = async (more: ApiOptions = {}): Promise<FastifyInstance> =>
    createApi({
      store: fixture.store,
      bus: present(apiBus, "the api's bus"),
      logger,
      registry: createMetrics("api").registry,
      ...more,
    });
  beforeAll(async () => {
    apiBus = options.apiBus ? await options.apiBus() : fixture.bus;
    app = await create(options.api);
    base = await app.listen({ host: "127.0.0.1", port: 0 });
    const admin = newApiKey(["*"], "admin");
    await fixture.store.saveApiKey(admin.record);
    key = admin.key;
  });
  afterAll(async () => {
    await app?.close();
  });
  const started = <T>(value: T | undefined): T => present(value, "the test api (not started)");
  return {
    namespace: fixture.namespace,
    store: fixture.store,
    bus: fixture.bus,
    get nc() {
      return fixture.nc;
    },
    get app() {
      return started(app);
    },
    get base() {
      return started(base);
    },
    get key() {
      return started(key);
    },
    get auth() {
      return { authorization: `Bearer ${started(key)}` };
    },
    async call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
      const res = await fetch(`${started(base)}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${started(key)}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
    },
    create,
    async listen(more) {
      const other = await create(more);
      return { app: other, url: await other.listen({ host: "127.0.0.1", port: 0 }) };
    },
  };
}
