import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { z } from "zod";
import { FleetError, errorMessage } from "@fleet/shared/errors";
import type { Logger } from "@fleet/shared/log";
import { SimCreateFault } from "@fleet/shared/config";
import {
  checkCreateSpec,
  checkTimeout,
  oldestFirst,
  relativeSegments,
  type CommandResult,
  type CommandSpec,
  type Sandbox,
  type SandboxCreateSpec,
  type SandboxFile,
  type SandboxProvider,
  type SandboxSummary,
} from "@fleet/shared/sandbox";
import { createFault } from "./faults.js";
import { SimulatedQuota } from "./quota.js";
import {
  SIM_ID,
  appendMark,
  createdLine,
  endedPath,
  forEachBounded,
  isMissing,
  listJournals,
  liveness,
  livePath,
  parseJournal,
  type SimulatedState,
} from "./state.js";

/**
 * A SIMULATED sandbox provider, for benchmarks only: no process, no files, no agent server, just a
 * small journal per sandbox in a state directory shared by every fleet process on the host. It lets
 * a benchmark push thousands of sessions a second through the real services. Correctness tests and
 * real runs use the `local` or `e2b` provider with a real OpenCode.
 */
export const SimulatedSandboxConfig = z.object({
  /** State directory shared by every process of the fleet and the benchmark (FLEET_SIM_DIR). */
  dir: z.string().min(1),
  /** Simulated cost of making a sandbox, spent inside create() (FLEET_SIM_CREATE_MS). */
  createMs: z.number().int().min(0).default(0),
  /** The scripted agent run each new sandbox gets: tool events, and the spacing between them. */
  events: z.number().int().min(0).default(5),
  eventMs: z.number().int().min(0).default(0),
  /** When set, create() refuses metadata naming another fleet and list() shows only this fleet's. */
  fleet: z.string().min(1).optional(),
  /** Creates that fail on purpose (FLEET_SIM_CREATE_FAULTS), for tests of provider errors. */
  createFaults: z.array(SimCreateFault).default([]),
  /** The account's concurrent-sandbox limit (FLEET_SIM_QUOTA), answered like E2B's; 0 = none. */
  quota: z.number().int().min(0).default(0),
  /** The Retry-After of its 429s (FLEET_SIM_RETRY_AFTER_MS), also of the rate_limit faults. */
  retryAfterMs: z.number().int().min(0).default(1_000),
  /** The longest timeout one create or setTimeout may ask (FLEET_SIM_MAX_TIMEOUT_MS), like E2B's plans; 0 = none. */
  maxTimeoutMs: z.number().int().min(0).default(0),
});
export type SimulatedSandboxConfig = z.input<typeof SimulatedSandboxConfig>;

export const SIM_WORKSPACE = "/simulated/workspace";
export const SIM_HOME = "/simulated/home";
export const SIM_AGENT_PORT = 4096;
/** What startBackground reports: there is no process, but the port promises a positive pid. */
export const SIM_PID = 1;

export class SimulatedSandboxProvider implements SandboxProvider {
  readonly name = "simulated";
  readonly dir: string;
  private readonly config: z.output<typeof SimulatedSandboxConfig>;
  private folders: Promise<void> | undefined;
  private readonly quota: SimulatedQuota | undefined;
  readonly maxTimeoutMs: number | undefined;

  constructor(
    config: SimulatedSandboxConfig,
    private readonly logger: Logger,
  ) {
    this.config = SimulatedSandboxConfig.parse(config);
    this.dir = this.config.dir;
    this.maxTimeoutMs = this.config.maxTimeoutMs > 0 ? this.config.maxTimeoutMs : undefined;
    this.quota =
      this.config.quota > 0
        ? new SimulatedQuota(
            this.dir,
            this.config.quota,
            this.config.retryAfterMs,
            (id) => this.alive(id),
            this.config.createMs,
          )
        : undefined;
  }

  private ensureFolders(): Promise<void> {
    this.folders ??= Promise.all([
      mkdir(join(this.dir, "live"), { recursive: true }),
      mkdir(join(this.dir, "ended"), { recursive: true }),
      mkdir(join(this.dir, "quota"), { recursive: true }),
    ]).then(
      () => undefined,
      (err: unknown) => {
        this.folders = undefined;
        throw new FleetError("sandbox", `cannot prepare ${this.dir}: ${errorMessage(err)}`, {
          retryable: true,
          cause: err,
        });
      },
    );
    return this.folders;
  }

  async create(spec: SandboxCreateSpec): Promise<SimulatedSandbox> {
    const { metadata } = checkCreateSpec(spec, this.config.fleet);
    checkTimeout(spec.timeoutMs, undefined);
    await this.ensureFolders();
    const fault = await createFault(this.dir, this.config.createFaults, metadata, this.config.retryAfterMs);
    if (fault) throw fault;
    const id = `sim-${randomBytes(8).toString("hex")}`;
    await this.quota?.take(id);
    try {
      return await this.record(id, spec, metadata);
    } catch (err) {
      await this.quota?.give(id);
      throw err;
    }
  }

  private async record(
    id: string,
    spec: SandboxCreateSpec,
    metadata: SandboxCreateSpec["metadata"],
  ): Promise<SimulatedSandbox> {
    if (this.config.createMs > 0) await delay(this.config.createMs);
    const createdAt = Date.now();
    const line = createdLine({
      id,
      createdAt,
      // Like E2B's plans: no sandbox gets more than the maximum at a time.
      endAt: createdAt + Math.min(spec.timeoutMs, this.maxTimeoutMs ?? Number.POSITIVE_INFINITY),
      metadata: { ...metadata },
      events: this.config.events,
      eventMs: this.config.eventMs,
    });
    try {
      await writeFile(livePath(this.dir, id), line, { flag: "wx" });
    } catch (err) {
      throw new FleetError("sandbox", `cannot record simulated sandbox ${id}: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
    return new SimulatedSandbox(id, this);
  }

  async connect(id: string): Promise<SimulatedSandbox | null> {
    return (await this.alive(id)) ? new SimulatedSandbox(id, this) : null;
  }

  /** Alive means the journal is still in live/ and its hard timeout has not passed (then it ends here). */
  async alive(id: string): Promise<boolean> {
    if (!SIM_ID.test(id)) return false;
    let state: Awaited<ReturnType<typeof liveness>>;
    try {
      state = await liveness(this.dir, id);
    } catch (err) {
      throw new FleetError("sandbox", `cannot read simulated sandbox ${id}: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
    if (state === "lapsed") {
      await this.quota?.give(id);
      this.logger.info({ sandboxId: id }, "simulated sandbox reached its timeout and ended");
    }
    return state === "alive";
  }

  /** Sets the hard timeout to `timeoutMs` from now (a `timeout` mark in the journal). */
  async setTimeout(id: string, timeoutMs: number): Promise<boolean> {
    checkTimeout(timeoutMs, this.maxTimeoutMs);
    if (!(await this.alive(id))) return false;
    const at = Date.now();
    return appendMark(livePath(this.dir, id), "timeout", at, { endAt: at + timeoutMs });
  }

  /** Live sandboxes matching the filter, including those past their own timeout, so a reaper sees them. */
  async list(filter: Partial<Record<string, string>> = {}): Promise<SandboxSummary[]> {
    const wanted = Object.entries(filter).filter((e): e is [string, string] => e[1] !== undefined);
    if (this.config.fleet) wanted.push(["fleet", this.config.fleet]);
    const folder = join(this.dir, "live");
    const found: SimulatedState[] = [];
    await forEachBounded(await listJournals(folder), 64, async (name) => {
      try {
        found.push(parseJournal(await readFile(join(folder, name), "utf8"), true));
      } catch (err) {
        // Killed between the listing and the read: no longer alive, nothing to report.
        if (!isMissing(err))
          this.logger.warn({ file: name, err: errorMessage(err) }, "skipping unreadable simulated sandbox journal");
      }
    });
    // Past its timeout is gone, as on a provider that enforces it: ended here, not listed.
    const now = Date.now();
    const lapsed = found.filter((s) => s.endAt <= now);
    for (const s of lapsed) await this.alive(s.id);
    return found
      .filter((s) => s.endAt > now && wanted.every(([k, v]) => s.metadata[k] === v))
      .map((s) => ({
        id: s.id,
        provider: this.name,
        metadata: { ...s.metadata },
        startedAt: s.createdAt,
        endAt: s.endAt,
      }))
      .sort(oldestFirst);
  }

  /** One rename from live/ to ended/ decides it: true for the call that made it, false after. */
  async kill(id: string): Promise<boolean> {
    if (!SIM_ID.test(id)) return false;
    try {
      await rename(livePath(this.dir, id), endedPath(this.dir, id));
    } catch (err) {
      if (isMissing(err)) return false;
      throw new FleetError("sandbox", `cannot kill simulated sandbox ${id}: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
    await this.quota?.give(id);
    // The kill is done; its time is only a record for the benchmark.
    await appendMark(endedPath(this.dir, id), "killed", Date.now()).catch((err: unknown) =>
      this.logger.debug({ sandboxId: id, err: errorMessage(err) }, "could not record the kill time"),
    );
    return true;
  }
}

/**
 * One SIMULATED sandbox (benchmarks only). Commands succeed at once with no output (so git as the
 * spawner and poller use it "works" and reports no changes); files written through this object can
 * be read back through it, and are otherwise not kept anywhere.
 */
export class SimulatedSandbox implements Sandbox {
  readonly provider = "simulated";
  readonly workspace = SIM_WORKSPACE;
  readonly home = SIM_HOME;
  readonly agentPort = SIM_AGENT_PORT;
  private readonly files = new Map<string, Uint8Array>();

  constructor(
    readonly id: string,
    private readonly owner: SimulatedSandboxProvider,
  ) {}

  async writeFiles(files: readonly SandboxFile[], options: { base?: "workspace" | "home" } = {}): Promise<void> {
    const base = options.base ?? "workspace";
    for (const f of files) {
      const key = `${base}:${relativeSegments(f.path).join("/")}`;
      this.files.set(key, typeof f.content === "string" ? Buffer.from(f.content, "utf8") : f.content);
    }
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    return this.files.get(`workspace:${relativeSegments(path).join("/")}`) ?? null;
  }

  async run(command: CommandSpec): Promise<CommandResult> {
    if (!command.command) throw new FleetError("sandbox", "empty command", { retryable: false });
    return { exitCode: 0, stdout: "", stderr: "" };
  }

  async startBackground(command: CommandSpec): Promise<{ pid: number }> {
    if (!command.command) throw new FleetError("sandbox", "empty command", { retryable: false });
    return { pid: SIM_PID };
  }

  /** `sim://<sandboxId>:<port>`: the simulated agent client finds its sandbox's journal from it. */
  url(port: number): string {
    return simulatedUrl(this.id, port);
  }

  isAlive(): Promise<boolean> {
    return this.owner.alive(this.id);
  }

  async kill(): Promise<void> {
    await this.owner.kill(this.id);
  }
}

export function simulatedUrl(sandboxId: string, port: number): string {
  return `sim://${sandboxId}:${port}`;
}

/** The sandbox id in a `sim://` URL; null for anything else. */
export function sandboxIdOfUrl(url: string): string | null {
  const m = /^sim:\/\/(sim-[0-9a-f]{16}):\d+\/?$/.exec(url);
  return m?.[1] ?? null;
}
