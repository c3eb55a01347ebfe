import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsCluster, type NatsCluster, type NatsNode } from "../../devtools/src/infra/nats-cluster.js";
import { defaultToolsDir, ensureNatsServer } from "../../devtools/src/infra/index.js";
import {
  FEED_API_PREFIX,
  generateNatsUsers,
  natsAuthConfig,
  natsServers,
  provisionOutsideFeed,
  type NatsUser,
} from "../../shared/src/bus/index.js";
import { eventually } from "./fixtures.js";

/** A three-node nats-server cluster of one test file's own, with the fleet's accounts and users, as `./fleet infra up --cluster 3` starts it. */
export interface TestCluster {
  /** Every node's URL, comma-separated (NATS_URL). */
  url: string;
  users: NatsUser[];
  nodes: NatsNode[];
  node(name: string): NatsNode;
  /** A connection as the role's user, to whichever node answers, reconnecting across them (closed by stop()). */
  as(role: NatsUser["role"]): Promise<NatsConnection>;
  /** A stream of the fleet (or the outside feed, `feed: true`) as its leader reports it. */
  info(stream: string, feed?: boolean): Promise<StreamInfo>;
  /** Waits until the stream has a leader and every replica is current: the state a test compares. */
  settled(stream: string, feed?: boolean, timeoutMs?: number): Promise<StreamInfo>;
  /** Moves the stream's leadership to `node` (a leader step-down naming it as preferred) and waits until it leads. */
  lead(stream: string, node: string): Promise<void>;
  stop(): Promise<void>;
}

/** `namespace`: the fleet's (FLEET_NAMESPACE), which the users' permissions and the feed are made for. */
export async function startTestCluster(
  prefix: string,
  options: { namespace?: string; syncInterval?: string } = {},
): Promise<TestCluster> {
  const namespace = options.namespace ?? "";
  const dir = mkdtempSync(join(tmpdir(), `fleet-${prefix}-`));
  const users = generateNatsUsers();
  const user = (role: NatsUser["role"]): NatsUser => {
    const u = users.find((x) => x.role === role);
    if (!u) throw new Error(`no user for ${role}`);
    return u;
  };
  const probe = user("spawner");
  const cluster: NatsCluster = await startNatsCluster({
    binary: await ensureNatsServer(defaultToolsDir()),
    dataDir: dir,
    size: 3,
    persistent: false,
    name: prefix,
    auth: { config: natsAuthConfig(users, namespace), probe: { user: probe.user, pass: probe.password } },
    syncInterval: options.syncInterval,
  });
  const conns: NatsConnection[] = [];
  const as = async (role: NatsUser["role"]): Promise<NatsConnection> => {
    const u = user(role);
    const nc = await connect({
      servers: natsServers(cluster.url),
      user: u.user,
      pass: u.password,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    conns.push(nc);
    return nc;
  };
  const admin = await as("spawner");
  const jsm = await jetstreamManager(admin, { timeout: 3_000 });
  const feedJsm = await jetstreamManager(admin, { apiPrefix: FEED_API_PREFIX, checkAPI: false, timeout: 3_000 });
  const info = (stream: string, feed = false) => (feed ? feedJsm : jsm).streams.info(stream);
  const node = (name: string): NatsNode => {
    const n = cluster.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  };
  const stop = async (): Promise<void> => {
    for (const nc of conns) await nc.close().catch(() => undefined);
    await cluster.stop();
    if (!process.env.FLEET_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await provisionOutsideFeed(admin, namespace, 3);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: cluster.url,
    users,
    nodes: cluster.nodes,
    node,
    as,
    info,
    settled: (stream, feed = false, timeoutMs = 60_000) =>
      eventually(
        async () => {
          const i = await info(stream, feed);
          const replicas = i.cluster?.replicas ?? [];
          const ok =
            i.cluster?.leader && replicas.length === 2 && replicas.every((r) => r.current && !r.offline && !r.lag);
          return ok ? i : undefined;
        },
        timeoutMs,
        250,
      ),
    lead: async (stream, to) => {
      await eventually(
        async () => {
          const i = await info(stream);
          if (i.cluster?.leader === to) return true;
          await admin
            .request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, JSON.stringify({ placement: { preferred: to } }), {
              timeout: 3_000,
            })
            .catch(() => undefined);
          return false;
        },
        30_000,
        500,
      );
    },
    stop,
  };
}
