import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "@fleet/shared/errors";
import type { Logger } from "@fleet/shared/log";
import { z } from "zod";
import { createApiHandler } from "./api.js";
import { LocalE2BFaults, type LocalE2BFaultsInput, type LocalE2BStats } from "./faults.js";
import { createProxyHandler, portUrlTemplate } from "./proxy.js";
import { SandboxPool } from "./sandboxes.js";

export { LocalE2BFaults, type LocalE2BFaultsInput, type LocalE2BStats } from "./faults.js";
export { portUrlTemplate } from "./proxy.js";

export const LocalE2BOptions = z.object({
  apiKey: z
    .string()
    .min(1)
    .default(() => `e2b_local_${randomBytes(12).toString("hex")}`),
  /** Where the sandboxes' folders go (default: a new temporary folder, removed on stop). */
  rootDir: z.string().min(1).optional(),
  host: z.string().default("127.0.0.1"),
  apiPort: z.number().int().min(0).max(65535).default(0),
  sandboxPort: z.number().int().min(0).max(65535).default(0),
  /** Host folders sandboxes may read (the agent's binary package), as a template would hold them. */
  readable: z.array(z.string().min(1)).default([]),
  /** Host loopback endpoints sandboxes may reach (E2B sandboxes reach the internet; these are all of it here). */
  egress: z.array(z.url()).default([]),
  /** E2B's default when a create names no timeout (5 minutes). */
  defaultTimeoutMs: z.number().int().positive().default(300_000),
  /**
   * E2B's cap on a sandbox's lifetime (1 hour on the hobby tier, 24 on pro). Also the hard limit of
   * the local sandbox underneath, which outlives a local E2B that died without stopping.
   */
  maxLifetimeMs: z.number().int().positive().default(3_600_000),
  faults: LocalE2BFaults.default(LocalE2BFaults.parse({})),
});
export type LocalE2BOptions = z.input<typeof LocalE2BOptions>;

export interface LocalE2B {
  apiKey: string;
  /** The host folder of the sandboxes (one folder per sandbox id, as the local provider lays them out). */
  rootDir: string;
  /** E2B_API_URL: the control plane. */
  apiUrl: string;
  /** E2B_SANDBOX_URL: envd and ports of every sandbox, routed by the SDK's headers. */
  sandboxUrl: string;
  /** E2B_PORT_URL: a sandbox port's URL for clients without the headers. */
  portUrl: string;
  /** The environment that points the fleet's e2b provider here. */
  env: Record<string, string>;
  /** Changes fault knobs (validated); counted faults start counting again. */
  setFaults(faults: LocalE2BFaultsInput): void;
  /** Allows sandboxes created from now on to reach these endpoints (those on this host's loopback). */
  setEgress(urls: readonly string[]): void;
  stats(): LocalE2BStats;
  /** Running sandbox ids. */
  sandboxIds(): string[];
  /** Kills a sandbox behind its user's back, as a dying host would. */
  killSandbox(id: string): Promise<boolean>;
  /** Makes a sandbox's timeout lapse now (it is killed at the next sweep, within ~250 ms). */
  expireSandbox(id: string): boolean;
  stop(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

const listen = (server: Server, host: string, port: number) =>
  new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });

/** Starts a local E2B (control plane and sandbox traffic on two ports of `host`). */
export async function startLocalE2B(input: LocalE2BOptions, logger: Logger): Promise<LocalE2B> {
  const options = LocalE2BOptions.parse(input);
  const ownRoot = options.rootDir === undefined;
  const rootDir = options.rootDir ?? mkdtempSync(join(tmpdir(), "local-e2b-"));
  // Sandbox users must be able to search their way to their own folders.
  if (ownRoot) chmodSync(rootDir, 0o711);
  let egress = options.egress.filter((u) => LOOPBACK.has(new URL(u).hostname));
  let faults = LocalE2BFaults.parse({ ...options.faults });
  const pool = new SandboxPool({
    rootDir,
    instance: `local-e2b-${randomBytes(4).toString("hex")}`,
    readable: options.readable,
    egress: () => egress,
    maxLifetimeMs: options.maxLifetimeMs,
    logger,
  });
  const stats: LocalE2BStats = {
    created: 0,
    rateLimited: 0,
    quotaRejected: 0,
    failed: 0,
    expired: 0,
    timeoutsSet: 0,
    timeoutsFailed: 0,
    running: 0,
    peakRunning: 0,
  };
  const api = createServer(
    createApiHandler({
      apiKey: options.apiKey,
      pool,
      faults: () => faults,
      stats,
      creating: { count: 0 },
      defaultTimeoutMs: options.defaultTimeoutMs,
      maxLifetimeMs: options.maxLifetimeMs,
      logger,
    }),
  );
  const traffic = createServer(createProxyHandler(pool));
  const apiPort = await listen(api, options.host, options.apiPort);
  const sandboxPort = await listen(traffic, options.host, options.sandboxPort);
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    pool
      .expire()
      .then((n) => {
        stats.expired += n;
        stats.running = pool.size;
      })
      .catch((err: unknown) => logger.warn({ err: errorMessage(err) }, "local E2B: expiry sweep failed"))
      .finally(() => {
        sweeping = false;
      });
  }, 250);
  const apiUrl = `http://${options.host}:${apiPort}`;
  const sandboxUrl = `http://${options.host}:${sandboxPort}`;
  const portUrl = portUrlTemplate(sandboxUrl);
  logger.info({ apiUrl, sandboxUrl, rootDir }, "local E2B listening");
  let stopped: Promise<void> | undefined;
  return {
    apiKey: options.apiKey,
    rootDir: pool.local.rootDir,
    apiUrl,
    sandboxUrl,
    portUrl,
    env: { E2B_API_KEY: options.apiKey, E2B_API_URL: apiUrl, E2B_SANDBOX_URL: sandboxUrl, E2B_PORT_URL: portUrl },
    setFaults(next) {
      faults = LocalE2BFaults.parse({ ...faults, ...next });
    },
    setEgress(urls) {
      // Only this host's loopback can be bridged into a sandbox; anything else stays unreachable.
      egress = z
        .array(z.url())
        .parse([...urls])
        .filter((u) => LOOPBACK.has(new URL(u).hostname));
    },
    stats: () => ({ ...stats, running: pool.size }),
    sandboxIds: () => pool.all().map((s) => s.id),
    killSandbox: async (id) => {
      const killed = await pool.kill(id);
      stats.running = pool.size;
      return killed;
    },
    expireSandbox: (id) => pool.setTimeout(id, 0),
    stop() {
      stopped ??= (async () => {
        clearInterval(sweep);
        api.closeAllConnections();
        traffic.closeAllConnections();
        await Promise.all([new Promise((r) => api.close(r)), new Promise((r) => traffic.close(r))]);
        await pool.killAll();
        if (ownRoot) rmSync(rootDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
