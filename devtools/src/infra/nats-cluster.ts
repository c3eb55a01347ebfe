import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "@fleet/shared/errors";
import { natsNodeConfig } from "./nats-config.js";
import { freePort } from "./ports.js";
import { startProcess, type ManagedProcess } from "./process.js";
import { probeJetStream, waitReady, type NatsAuthStart } from "./servers.js";

export interface NatsClusterStart {
  binary: string;
  dataDir: string;
  /** Nodes (3 or more for JetStream to keep a majority when one is lost). */
  size: number;
  persistent: boolean;
  auth?: NatsAuthStart | undefined;
  syncInterval?: string | undefined;
  /** Monitoring port of the first node (benchmarks read /varz there). */
  monitorPort?: number | undefined;
  readyTimeoutMs?: number;
  /** The cluster's name, also the prefix of each node's server_name. */
  name?: string;
}

/** One node: its own store folder, client port and route port, kept across restarts. */
export interface NatsNode {
  /** JetStream's server_name (what stream info names as leader or replica). */
  readonly name: string;
  readonly url: string;
  readonly process: ManagedProcess;
  readonly running: boolean;
  /** Signals the node (SIGKILL by default) and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the node again on its ports and store; resolves once it answers (JetStream needs a meta leader). */
  restart(): Promise<void>;
}

export interface NatsCluster {
  /** Every node's URL, comma-separated: what NATS_URL takes. */
  url: string;
  nodes: NatsNode[];
  /** Stops every node. Idempotent. */
  stop(): Promise<void>;
}

/**
 * A nats-server cluster on loopback: each node with JetStream (a unique server_name, its own store
 * folder), routes to every other node, and the same auth config. Ready once every node answers a
 * JetStream request, which needs the cluster to have elected its meta leader.
 */
export async function startNatsCluster(opts: NatsClusterStart): Promise<NatsCluster> {
  if (!Number.isInteger(opts.size) || opts.size < 2 || opts.size > 7) {
    throw new FleetError("config", `a cluster has 2 to 7 nodes, not ${opts.size}`);
  }
  const name = opts.name ?? "fleet";
  const ports = await distinctFreePorts(opts.size * 2);
  const clientPorts = ports.slice(0, opts.size);
  const routePorts = ports.slice(opts.size);
  const nodes = clientPorts.map((port, i) => {
    const serverName = `${name}-n${i + 1}`;
    const dir = join(opts.dataDir, "nats", serverName);
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, "nats.conf");
    writeFileSync(
      conf,
      natsNodeConfig({
        serverName,
        port,
        storeDir: join(dir, "jetstream"),
        monitorPort: i === 0 ? opts.monitorPort : undefined,
        syncInterval: opts.syncInterval,
        accounts: opts.auth?.config,
        cluster: { name, port: routePorts[i] as number, routes: routePorts.filter((_, j) => j !== i) },
      }),
      { mode: 0o600 },
    );
    return new Node(serverName, `nats://127.0.0.1:${port}`, opts, conf, join(opts.dataDir, `nats-${serverName}.log`));
  });
  for (const n of nodes) n.spawn();
  const cluster: NatsCluster = {
    url: nodes.map((n) => n.url).join(","),
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.process.stop()));
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.ready()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

class Node implements NatsNode {
  private proc: ManagedProcess | undefined;
  constructor(
    readonly name: string,
    readonly url: string,
    private readonly opts: NatsClusterStart,
    private readonly conf: string,
    private readonly logFile: string,
  ) {}

  get process(): ManagedProcess {
    if (!this.proc) throw new FleetError("infra", `node ${this.name} was never started`);
    return this.proc;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  spawn(): void {
    this.proc = startProcess({
      name: `nats-${this.name}`,
      command: this.opts.binary,
      args: ["-c", this.conf],
      logFile: this.logFile,
      persistent: this.opts.persistent,
    });
  }

  ready(): Promise<void> {
    return waitReady(this.process, `nats-server ${this.name}`, this.opts.readyTimeoutMs ?? 30_000, () =>
      probeJetStream(this.url, this.opts.auth?.probe),
    );
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const p = this.process;
    if (!p.running) return;
    process.kill(p.pid, signal);
    await p.exited;
  }

  async restart(): Promise<void> {
    if (this.running) throw new FleetError("infra", `node ${this.name} is still running`);
    this.spawn();
    await this.ready();
  }
}

/** `n` ports free on loopback now, no two alike. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
