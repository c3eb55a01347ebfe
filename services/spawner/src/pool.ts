import { createHash, randomUUID } from "node:crypto";
import {
  errorMessage,
  mintPoolGatewayToken,
  pooledAgentPassword,
  poolSlotHolder,
  type AgentClient,
  type AgentSessionStatus,
  type AgentRuntime,
  type GatewayTokenConfig,
  type Logger,
  type ModelSettings,
  type PoolEntry,
  type PoolStore,
  type Sandbox,
  type SandboxProvider,
  type Session,
  type SlotStore,
} from "@fleet/shared";
import type { PoolMetrics } from "@fleet/shared/metrics";
import { waitHealthy } from "./health.js";
import { poolDemandTarget, type PoolSizing } from "./pool-sizing.js";

export interface PoolSettings extends PoolSizing {
  fleet: string;
  instanceId: string;
  agentSecret: string;
  /** The fleet's models and endpoint; with `gateway`, agents get its URL and an inert pool token. */
  model: ModelSettings;
  gateway?: { url: string; tokens: GatewayTokenConfig };
  egress: readonly string[];
  agentReadyMs: number;
  /** A warm sandbox older than this is replaced. */
  maxAgeMs: number;
  /** How long a session looks for a ready sandbox before it starts cold. */
  claimWaitMs: number;
  /** FLEET_MAX_SANDBOXES: pooled sandboxes hold a fleet-wide slot each; 0 = no cap. */
  globalCap: number;
  tickMs: number;
}

export type PoolManagerStore = PoolStore & SlotStore;

export interface PoolDeps {
  store: PoolManagerStore;
  provider: SandboxProvider;
  runtime: AgentRuntime;
  logger: Logger;
  metrics?: PoolMetrics;
}

export interface WarmClaim {
  sandbox: Sandbox;
  client: AgentClient;
  entry: PoolEntry;
  claimMs: number;
}

/** A warm sandbox's hard timeout past its maximum age: the longest a claimed one may serve its session. */
const SERVE_LIMIT_MS = 6 * 3_600_000;
/**
 * Creation failures in a row after which the pool stops creating; a session that finds no ready
 * agent restarts it once RETRY_STOPPED_MS have passed. Before that, each failure doubles the wait.
 */
const MAX_FAILURES = 5;
const RETRY_STOPPED_MS = 5 * 60_000;

/** The wait before the next creation after `failures` failures in a row: 1 s, 2 s, 4 s… */
export function creationBackoffMs(failures: number): number {
  return failures === 0 ? 0 : Math.min(60_000, 1_000 * 2 ** (failures - 1));
}

/**
 * The warm pool of one spawner instance: keeps ready agents (sandbox made, OpenCode started with its
 * own password and an inert model token, its workspace bootstrapped) for the fleet's pool key, and
 * lets sessions claim them. Every instance may claim any instance's warm sandboxes: the claim is a
 * compare-and-set in the store. A sandbox is removed from the pool only by a compare-and-set too, so
 * a sandbox being claimed is never reaped, and a reaped one never claimed.
 */
export class PoolManager {
  readonly key: string;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private creating = 0;
  private failures = 0;
  private lastFailureAt = 0;
  private lastError: string | undefined;
  private readonly demand: number[] = [];
  private stopped = false;
  private lastTick: number | undefined;
  private hits = 0;
  private misses = 0;

  constructor(
    private readonly deps: PoolDeps,
    readonly settings: PoolSettings,
  ) {
    this.key = poolKey(deps.provider.name, deps.runtime.name, settings.model, settings.gateway?.url);
  }

  start(): void {
    const loop = () => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.deps.logger.warn({ err: errorMessage(err) }, "pool tick failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, this.settings.tickMs);
        });
    };
    loop();
  }

  /** Stops topping up and kills this instance's unclaimed sandboxes (claimed ones belong to their sessions). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    const mine = await this.deps.store.poolEntries(this.settings.fleet, { owner: this.settings.instanceId });
    await Promise.all(mine.filter((e) => e.state !== "claimed").map((e) => this.reap(e, "shutdown")));
  }

  /** What `./fleet pool` and the metrics show for this instance. */
  status(): { key: string; target: number; failures: number; lastError?: string } {
    return {
      key: this.key,
      target: this.target(),
      failures: this.failures,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** Whether a session can run on a pooled agent: its models are the pool's, nothing set at start differs. */
  eligible(session: Session): boolean {
    if (session.config.maxTokens) return false;
    const models = new Set(this.settings.model.models);
    const wanted = [
      session.config.model ?? this.settings.model.models[0] ?? "default",
      ...session.config.fallbackModels,
    ];
    return wanted.every((m) => models.has(m));
  }

  /**
   * Claims a ready sandbox for one attempt of a session, looking for up to `claimWaitMs`; null: start
   * cold. A claimed sandbox that turns out dead is dropped and the next one tried.
   */
  async claim(session: Session, attempt: number): Promise<WarmClaim | null> {
    if (!this.eligible(session)) return null;
    this.demand.push(Date.now());
    const started = Date.now();
    for (;;) {
      const entry = await this.deps.store.claimPooled(this.settings.fleet, this.key, {
        sessionId: session.id,
        attempt,
        projectId: session.projectId,
      });
      if (entry) {
        const sandbox = await this.deps.provider.connect(entry.sandboxId).catch(() => null);
        if (sandbox && (await sandbox.isAlive().catch(() => false))) {
          if (entry.slotHolder) await this.takeSlot(entry.slotHolder, session, attempt);
          const client = this.deps.runtime.connect({
            baseUrl: sandbox.url(sandbox.agentPort),
            password: pooledAgentPassword(this.settings.agentSecret, sandbox.id),
          });
          const claimMs = Date.now() - started;
          this.hits += 1;
          this.deps.metrics?.claims.inc({ key: this.key, result: "hit" });
          this.deps.metrics?.claimSeconds.observe({ key: this.key }, claimMs / 1000);
          this.deps.metrics?.warmAgeSeconds.observe(
            { key: this.key },
            Math.max(0, Date.now() - (entry.readyAt ?? entry.createdAt)) / 1000,
          );
          return { sandbox, client, entry, claimMs };
        }
        this.deps.logger.warn({ sandboxId: entry.sandboxId }, "claimed a pooled sandbox that is gone; trying another");
        await this.drop(entry);
        continue;
      }
      if (Date.now() - started >= this.settings.claimWaitMs) {
        this.misses += 1;
        // A stopped pool tries again for a session that wanted an agent, long after it stopped.
        if (this.failures >= MAX_FAILURES && Date.now() - this.lastFailureAt > RETRY_STOPPED_MS)
          this.failures = MAX_FAILURES - 1;
        this.deps.metrics?.claims.inc({ key: this.key, result: "miss" });
        this.deps.metrics?.claimSeconds.observe({ key: this.key }, (Date.now() - started) / 1000);
        return null;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * The claimed sandbox's fleet-wide slot becomes the session's: the count of sandboxes does not
   * change. A later attempt may still hold the slot of its earlier sandbox, killed by now (see
   * `releaseEarlierClaims`): it keeps that one, and the pooled sandbox's is freed.
   */
  private async takeSlot(holder: string, session: Pick<Session, "id" | "projectId">, attempt: number): Promise<void> {
    const { store } = this.deps;
    const holds =
      attempt > 1 && (await store.heldSlots()).some((x) => x.scope === "global" && x.sessionId === session.id);
    if (holds) await store.releaseSlots(holder);
    else await store.transferSlots(holder, session.id, session.projectId);
  }

  /**
   * Kills the pooled sandboxes a session claimed in attempts before `attempt` (a spawner that died
   * right after its claim had not recorded them on the session), freeing their records and any slot
   * still the pool's. The reaper would find them too, but only after the session has moved on.
   */
  async releaseEarlierClaims(sessionId: string, attempt: number): Promise<void> {
    const { store, provider } = this.deps;
    for (const e of await store.poolEntries(this.settings.fleet, { sessionId })) {
      if (e.state !== "claimed" || (e.attempt ?? 0) >= attempt) continue;
      await provider.kill(e.sandboxId).catch(() => undefined);
      if (e.slotHolder) await store.releaseSlots(e.slotHolder);
      await store.removePoolEntry(e.sandboxId);
    }
  }

  /**
   * Gives up one unclaimed warm sandbox (any instance's) so that a session waiting for a slot under
   * FLEET_MAX_SANDBOXES gets one: the pool never keeps a session queued.
   */
  async makeRoom(): Promise<boolean> {
    const warm = await this.deps.store.poolEntries(this.settings.fleet, { state: "warm" });
    for (const e of warm.reverse()) if (await this.reap(e, "make_room")) return true;
    return false;
  }

  /** The size the pool aims at now (see pool-sizing.ts). */
  target(now = Date.now()): number {
    while (this.demand.length > 0 && (this.demand[0] ?? 0) < now - this.settings.windowMs) this.demand.shift();
    return poolDemandTarget(this.settings, this.demand, now);
  }

  private async tick(): Promise<void> {
    const { store, logger } = this.deps;
    const { fleet, instanceId } = this.settings;
    await store.touchPool(fleet, instanceId);
    const mine = await store.poolEntries(fleet, { owner: instanceId });
    const now = Date.now();
    let kept = 0;
    for (const e of mine) {
      if (e.state === "claimed") continue;
      if (e.state === "warm" && now - e.createdAt > this.settings.maxAgeMs) {
        await this.reap(e, "max_age");
        continue;
      }
      if (e.state === "warm" && !(await this.healthy(e))) {
        await this.reap(e, "health");
        continue;
      }
      kept += 1;
    }
    const target = this.target(now);
    const ready = mine.filter((e) => e.state === "warm").length;
    this.deps.metrics?.target.set({ key: this.key }, target);
    this.deps.metrics?.ready.set({ key: this.key }, ready);
    if (this.lastTick !== undefined)
      this.deps.metrics?.idleWarmSeconds.inc({ key: this.key }, (ready * (now - this.lastTick)) / 1000);
    this.lastTick = now;
    await store.reportPoolStatus({
      fleet,
      owner: instanceId,
      key: this.key,
      target,
      ready,
      starting: mine.filter((e) => e.state === "starting").length,
      hits: this.hits,
      misses: this.misses,
      failures: this.failures,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      at: now,
    });
    // Over target (demand fell, or stopped: the pool shrinks to its minimum), the oldest go first.
    const warm = mine.filter((e) => e.state === "warm");
    for (let surplus = kept - target; surplus > 0 && warm.length > 0; surplus--) {
      const e = warm.shift();
      if (e && (await this.reap(e, "idle"))) kept -= 1;
    }
    if (this.failures >= MAX_FAILURES) return;
    if (Date.now() - this.lastFailureAt < creationBackoffMs(this.failures)) return;
    for (let missing = target - kept - this.creating; missing > 0; missing--) {
      if (this.creating >= this.settings.maxCreating) break;
      const holder = poolSlotHolder(this.settings.instanceId, randomUUID());
      if (this.settings.globalCap > 0 && !(await store.acquireSlot("global", this.settings.globalCap, holder))) break;
      this.creating += 1;
      void this.create(holder)
        .then(() => {
          this.failures = 0;
          this.lastError = undefined;
        })
        .catch((err: unknown) => {
          this.failures += 1;
          this.lastFailureAt = Date.now();
          this.lastError = errorMessage(err);
          logger.warn({ err: this.lastError, failures: this.failures }, "could not make a pooled sandbox");
        })
        .finally(() => {
          this.creating -= 1;
        });
    }
  }

  private async create(holder: string): Promise<void> {
    const { provider, store, runtime } = this.deps;
    const s = this.settings;
    let sandbox: Sandbox | undefined;
    try {
      sandbox = await provider.create({
        metadata: { fleet: s.fleet, pool: this.key, state: "warm", owner: s.instanceId },
        envs: {},
        timeoutMs: s.maxAgeMs + SERVE_LIMIT_MS,
        egress: s.egress,
      });
      await store.addPoolEntry({
        sandboxId: sandbox.id,
        fleet: s.fleet,
        key: this.key,
        owner: s.instanceId,
        slotHolder: holder,
      });
      await sandbox.writeFiles(runtime.homeFiles(), { base: "home" });
      const password = pooledAgentPassword(s.agentSecret, sandbox.id);
      const model: ModelSettings = s.gateway
        ? {
            ...s.model,
            baseUrl: s.gateway.url,
            apiKey: await mintPoolGatewayToken(
              s.gateway.tokens,
              sandbox.id,
              s.model.models,
              (s.maxAgeMs + SERVE_LIMIT_MS) / 1000,
            ),
          }
        : s.model;
      const { pid } = await sandbox.startBackground(
        runtime.launchCommand({ port: sandbox.agentPort, password, workspace: sandbox.workspace, model }),
      );
      const client = runtime.connect({ baseUrl: sandbox.url(sandbox.agentPort), password });
      await waitHealthy(client, sandbox, s.agentReadyMs);
      await warmUp(client, s);
      if (!(await store.markPoolWarm(sandbox.id, pid))) throw new Error("its pool record is gone");
    } catch (err) {
      if (sandbox) {
        await provider.kill(sandbox.id).catch(() => undefined);
        await store.removeUnclaimed(sandbox.id).catch(() => undefined);
      }
      await store.releaseSlots(holder).catch(() => undefined);
      throw err;
    }
  }

  private async healthy(e: PoolEntry): Promise<boolean> {
    const sandbox = await this.deps.provider.connect(e.sandboxId).catch(() => null);
    if (!sandbox || !(await sandbox.isAlive().catch(() => false))) return false;
    const client = this.deps.runtime.connect({
      baseUrl: sandbox.url(sandbox.agentPort),
      password: pooledAgentPassword(this.settings.agentSecret, sandbox.id),
    });
    // Generous: under load a healthy server can stay silent for seconds.
    return client.health(5_000).catch(() => false);
  }

  /** Removes an unclaimed sandbox from the pool (a compare-and-set), then kills it; false when it was claimed meanwhile. */
  private async reap(e: PoolEntry, reason: string): Promise<boolean> {
    if (!(await this.deps.store.removeUnclaimed(e.sandboxId))) return false;
    await this.deps.provider.kill(e.sandboxId).catch(() => undefined);
    if (e.slotHolder) await this.deps.store.releaseSlots(e.slotHolder).catch(() => undefined);
    this.deps.metrics?.reaps.inc({ key: this.key, reason });
    this.deps.logger.info({ sandboxId: e.sandboxId, reason }, "pooled sandbox reaped");
    return true;
  }

  /** A claimed sandbox that is gone: nothing to serve, so its record and slot go. */
  private async drop(e: PoolEntry): Promise<void> {
    await this.deps.provider.kill(e.sandboxId).catch(() => undefined);
    await this.deps.store.removePoolEntry(e.sandboxId);
    if (e.slotHolder) await this.deps.store.releaseSlots(e.slotHolder).catch(() => undefined);
  }
}

/**
 * Bootstraps the workspace's instance (config, providers, tools), which a first prompt would pay.
 * With the gateway, a prompt runs too: its model call carries the inert pool token, which the gateway
 * refuses at once, so the provider's code is loaded and nothing runs in the workspace. Without the
 * gateway a prompt would reach the real model with the real key: only the session is created.
 */
async function warmUp(client: AgentClient, s: PoolSettings): Promise<void> {
  const session = await client.createSession("warm-up");
  if (!s.gateway) return;
  await client.prompt(session.id, { text: "warm-up", model: s.model.models[0] ?? "default" });
  const started = Date.now();
  let seenBusy = false;
  while (Date.now() - started < WARM_UP_MS) {
    await new Promise((r) => setTimeout(r, 200));
    const statuses = await client.status().catch((): Record<string, AgentSessionStatus> => ({}));
    if (statuses[session.id]) seenBusy = true;
    // "absent" means done only after busy was seen (the status can lag the prompt by ~200 ms).
    else if (seenBusy || Date.now() - started > 3_000) break;
  }
  await client.abort(session.id).catch(() => undefined);
}

/** The longest a pooled agent's warm-up prompt may take before it is aborted. */
const WARM_UP_MS = 15_000;

/**
 * Sandboxes are interchangeable only when made the same way: provider, agent runtime, model endpoint
 * and models. No secret enters the key.
 */
export function poolKey(provider: string, runtime: string, model: ModelSettings, gatewayUrl?: string): string {
  const h = createHash("sha256")
    .update(JSON.stringify([provider, runtime, gatewayUrl ?? model.baseUrl, model.models]))
    .digest("hex")
    .slice(0, 12);
  return `${provider}-${h}`;
}
