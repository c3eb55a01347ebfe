import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll } from "vitest";
import {
  defaultToolsDir,
  ensureNatsServer,
  freePort,
  startProcess,
  type ManagedProcess,
} from "../../devtools/src/infra/index.js";
import { eventually } from "./fixtures.js";

/** A server of one test file's own, stopped and started again on the same port and data. */
export class Restartable {
  private proc: ManagedProcess | undefined;
  constructor(
    private readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly logFile: string,
    private readonly ready: () => Promise<void>,
  ) {}
  async start(): Promise<void> {
    this.proc = startProcess({ name: this.name, command: this.command, args: this.args, logFile: this.logFile });
    await eventually(async () => await this.ready().then(() => true), 20_000, 100);
  }
  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}

/** A nats-server with JetStream under `dir`, on a free port; not started. */
export async function restartableNats(name: string, dir: string): Promise<{ server: Restartable; url: string }> {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const server = new Restartable(
    name,
    await ensureNatsServer(defaultToolsDir()),
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", join(dir, "js")],
    join(dir, `${name}.log`),
    async () => {
      await (await connect({ servers: url, reconnect: false, timeout: 500 })).close();
    },
  );
  return { server, url };
}

export interface OwnNats {
  /** The server, to stop and start in a test. */
  readonly server: Restartable;
  readonly url: string;
  /** A temp folder of the file's own, removed after the file. */
  readonly dir: string;
}

/**
 * A nats-server of the test file's own. Call it at the file's top level: it is up before any
 * describe's fixture opens a bus on it, and stopped after they closed theirs.
 */
export function useOwnNats(name: string): OwnNats {
  let state: OwnNats | undefined;
  const get = (): OwnNats => {
    if (!state) throw new Error(`${name}: the nats-server is not started yet`);
    return state;
  };
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), `fleet-${name}-`));
    const { server, url } = await restartableNats(name, dir);
    state = { server, url, dir };
    await server.start();
  }, 60_000);
  afterAll(async () => {
    await state?.server.stop();
    if (state) rmSync(state.dir, { recursive: true, force: true });
  });
  return {
    get server() {
      return get().server;
    },
    get url() {
      return get().url;
    },
    get dir() {
      return get().dir;
    },
  };
}
