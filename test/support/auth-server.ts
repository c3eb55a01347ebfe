import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { connectBus, type Bus } from "../../shared/src/bus/index.js";
import { generateNatsUsers, natsAuthConfig, provisionOutsideFeed, type NatsUser } from "../../shared/src/bus/index.js";
import { defaultToolsDir, ensureNatsServer, freePort, startProcess } from "../../devtools/src/infra/index.js";
import { eventually, logger } from "./fixtures.js";

/** A nats-server of its own, configured by natsAuthConfig as the launcher does, with the fleet's streams and the outside feed provisioned. */
export interface AuthServer {
  url: string;
  users: NatsUser[];
  /** A plain connection as this role's user (closed by stop()). */
  as(role: NatsUser["role"]): Promise<NatsConnection>;
  /** The fleet's own Bus as this role's user (closed by stop()). */
  busAs(role: NatsUser["role"]): Promise<Bus>;
  stop(): Promise<void>;
}

/**
 * `namespace`: the fleet's namespace on it (subjects, streams and the feed), none by default;
 * `users`: the roles' users, when the caller needs them before the server starts.
 */
export async function startAuthServer(
  prefix: string,
  namespace = "",
  users: NatsUser[] = generateNatsUsers(),
): Promise<AuthServer> {
  const dir = mkdtempSync(join(tmpdir(), `fleet-${prefix}-`));
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const conf = join(dir, "nats.conf");
  writeFileSync(
    conf,
    `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${natsAuthConfig(users, namespace)}`,
    { mode: 0o600 },
  );
  const server = startProcess({
    name: prefix,
    command: await ensureNatsServer(defaultToolsDir()),
    args: ["-c", conf],
    logFile: join(dir, "nats.log"),
  });
  const conns: NatsConnection[] = [];
  const buses: Bus[] = [];
  const user = (role: NatsUser["role"]): NatsUser => {
    const u = users.find((x) => x.role === role);
    if (!u) throw new Error(`no user for ${role}`);
    return u;
  };
  const as = async (role: NatsUser["role"]): Promise<NatsConnection> => {
    const u = user(role);
    const nc = await connect({ servers: url, user: u.user, pass: u.password, reconnect: false });
    conns.push(nc);
    return nc;
  };
  const busAs = async (role: NatsUser["role"]): Promise<Bus> => {
    const u = user(role);
    const bus = await connectBus({ servers: url, namespace, name: role, user: u.user, pass: u.password }, { logger });
    buses.push(bus);
    return bus;
  };
  const stop = async (): Promise<void> => {
    for (const b of buses) await b.close().catch(() => undefined);
    for (const nc of conns) await nc.close().catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(
      async () => {
        const nc = await connect({
          servers: url,
          user: user("spawner").user,
          pass: user("spawner").password,
          reconnect: false,
        });
        await nc.close();
        return true;
      },
      15_000,
      100,
    );
    // A fleet service provisions the streams and consumers, as it does at start; the launcher, the outside feed.
    await (await busAs("spawner")).provision();
    await provisionOutsideFeed(await as("spawner"), namespace);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, users, as, busAs, stop };
}
