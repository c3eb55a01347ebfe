/**
 * The configuration file of one nats-server of the fleet: a lone server or a node of a cluster on
 * loopback. One writer for both, so every node of a cluster gets the same JetStream and auth settings.
 */
export interface NatsNodeConfig {
  /** JetStream's server_name: unique within a cluster. */
  serverName: string;
  port: number;
  storeDir: string;
  monitorPort?: number | undefined;
  /**
   * JetStream's sync_interval: how often the file store fsyncs. Unset keeps nats-server's default
   * (lazy, every 2 minutes); `always` fsyncs every write before it is acknowledged.
   */
  syncInterval?: string | undefined;
  /** The `accounts` block (natsAuthConfig); without it the server has no users. */
  accounts?: string | undefined;
  cluster?: { name: string; port: number; routes: number[] } | undefined;
}

const q = (v: string): string => JSON.stringify(v);

/** A sync interval nats-server accepts: `always`, or a Go duration such as `10s` or `2m`. */
export const SYNC_INTERVAL = /^(always|\d+(ms|s|m|h))$/;

export function natsNodeConfig(c: NatsNodeConfig): string {
  if (c.syncInterval !== undefined && !SYNC_INTERVAL.test(c.syncInterval)) {
    throw new Error(`sync interval ${q(c.syncInterval)} is neither "always" nor a duration such as 10s`);
  }
  const lines = [
    `server_name: ${q(c.serverName)}`,
    `listen: ${q(`127.0.0.1:${c.port}`)}`,
    ...(c.monitorPort ? [`http: ${q(`127.0.0.1:${c.monitorPort}`)}`] : []),
    "jetstream {",
    `  store_dir: ${q(c.storeDir)}`,
    ...(c.syncInterval ? [`  sync_interval: ${c.syncInterval === "always" ? "always" : q(c.syncInterval)}`] : []),
    "}",
  ];
  if (c.cluster) {
    lines.push(
      "cluster {",
      `  name: ${q(c.cluster.name)}`,
      `  listen: ${q(`127.0.0.1:${c.cluster.port}`)}`,
      `  routes: [${c.cluster.routes.map((p) => q(`nats-route://127.0.0.1:${p}`)).join(", ")}]`,
      "}",
    );
  }
  return `${lines.join("\n")}\n${c.accounts ?? ""}`;
}
