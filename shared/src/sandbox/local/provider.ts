import { execFile } from "node:child_process";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { FleetError, errorMessage } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import { type SandboxCreateSpec, type SandboxProvider, type SandboxSummary } from "../port.js";
import { checkCreateSpec } from "../spec.js";
import { ephemeralPortRange, resolveLocalConfig, type LocalSandboxConfig, type ResolvedLocalConfig } from "./config.js";
import { chooseIsolation, type IsolationMode } from "./isolation.js";
import { pickPort } from "./ports.js";
import { CREATING_PREFIX, killLocalSandbox, recordAlive, sweepLeftovers } from "./reap.js";
import { LOCAL_ID, layoutOf, newSandboxId, readRecord, writeEnvs, writeRecord, type RegistryRecord, type SandboxLayout } from "./registry.js";
import { LocalSandbox } from "./sandbox.js";

const run = promisify(execFile);

/**
 * Sandboxes as detached process groups on this host, each in its own folder below rootDir and
 * registered there, so any process on the host can list, reach and kill them.
 */
export class LocalSandboxProvider implements SandboxProvider {
  readonly name = "local";
  /** What isolates sandboxes from the host and each other here: bubblewrap namespaces, or nothing. */
  readonly isolation: IsolationMode;
  readonly rootDir: string;
  private readonly config: ResolvedLocalConfig;
  /** Ports handed out by this process but not yet visible in a registry record. */
  private readonly pendingPorts = new Set<number>();

  constructor(config: LocalSandboxConfig, private readonly logger: Logger) {
    this.config = resolveLocalConfig(config);
    this.rootDir = this.config.rootDir;
    this.isolation = chooseIsolation(this.config.isolation, this.config.bwrapBin);
    if (this.config.isolation === "auto" && this.isolation === "none") {
      logger.warn({ rootDir: this.rootDir }, "bubblewrap unavailable: local sandboxes run without isolation");
    }
    const [lo, hi] = this.config.portRange;
    const ephemeral = ephemeralPortRange();
    if (ephemeral && lo <= ephemeral[1] && hi >= ephemeral[0]) {
      logger.warn({ portRange: [lo, hi], ephemeral }, "agent port range overlaps the ephemeral range: agent servers may find their port taken");
    }
  }

  private sandbox(record: Pick<RegistryRecord, "id" | "agentPort">): LocalSandbox {
    return new LocalSandbox(record.id, record.agentPort, {
      config: this.config,
      isolation: this.isolation,
      layout: layoutOf(join(this.rootDir, record.id)),
      logger: this.logger,
      kill: (id) => this.kill(id),
    });
  }

  async create(spec: SandboxCreateSpec): Promise<LocalSandbox> {
    const { metadata, envs } = checkCreateSpec(spec, this.config.fleet);
    const records = await this.records();
    if (this.config.maxSandboxes !== undefined && records.filter((r) => recordAlive(r)).length >= this.config.maxSandboxes) {
      throw new FleetError("sandbox", `local sandbox capacity reached (${this.config.maxSandboxes})`, { retryable: true });
    }
    const id = newSandboxId();
    // Built under a dot-name and renamed into place: a sandbox is registered complete or not at all.
    const staging = layoutOf(join(this.rootDir, `${CREATING_PREFIX}${id}`));
    let port: number | undefined;
    try {
      await this.prepareFolders(staging);
      await this.initGit(staging);
      port = await pickPort(this.config.portRange, new Set([...records.map((r) => r.agentPort), ...this.pendingPorts]));
      this.pendingPorts.add(port);
      const startedAt = Date.now();
      const record: RegistryRecord = {
        version: 1,
        id,
        provider: "local",
        metadata: { ...metadata },
        startedAt,
        endAt: startedAt + spec.timeoutMs,
        agentPort: port,
        isolation: this.isolation,
        processes: [],
      };
      await writeEnvs(staging, envs);
      await writeRecord(staging, record);
      await rename(staging.dir, join(this.rootDir, id));
      this.logger.info({ sandboxId: id, agentPort: port, isolation: this.isolation, endAt: record.endAt }, "local sandbox created");
      return this.sandbox(record);
    } catch (err) {
      await rm(staging.dir, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof FleetError) throw err;
      throw new FleetError("sandbox", `cannot create local sandbox: ${errorMessage(err)}`, { retryable: true, cause: err });
    } finally {
      if (port !== undefined) this.pendingPorts.delete(port);
    }
  }

  private async prepareFolders(layout: SandboxLayout): Promise<void> {
    await mkdir(layout.dir, { mode: 0o700 });
    for (const dir of [layout.workspace, layout.tmp, layout.logs]) await mkdir(dir, { mode: 0o755 });
    for (const sub of [".config", ".cache", join(".local", "share"), join(".local", "state")]) {
      await mkdir(join(layout.home, sub), { recursive: true, mode: 0o755 });
    }
  }

  /** A repository with one empty commit, so the agent's changes show up as a diff against it. */
  private async initGit(layout: SandboxLayout): Promise<void> {
    const env = { PATH: this.config.path, HOME: layout.home, LANG: this.config.lang, GIT_CONFIG_NOSYSTEM: "1" };
    const git = (...args: string[]) => run(this.config.gitBin, ["-C", layout.workspace, ...args], { env, timeout: 30_000 });
    await git("init", "-q", "-b", "main");
    await git("config", "user.name", "Fleet Agent");
    await git("config", "user.email", "agent@fleet.invalid");
    await git("config", "commit.gpgsign", "false");
    await git("commit", "-q", "--allow-empty", "-m", "Initial empty commit");
  }

  async connect(id: string): Promise<LocalSandbox | null> {
    if (!LOCAL_ID.test(id)) return null;
    const record = await readRecord(layoutOf(join(this.rootDir, id)));
    return record ? this.sandbox(record) : null;
  }

  /** Every registered record, valid ones only; damaged ones are reported, never fatal to a reaper. */
  private async records(): Promise<RegistryRecord[]> {
    const names = await readdir(this.rootDir).catch((err: unknown) => {
      throw new FleetError("sandbox", `cannot read ${this.rootDir}: ${errorMessage(err)}`, { retryable: true, cause: err });
    });
    const out: RegistryRecord[] = [];
    for (const name of names) {
      if (!LOCAL_ID.test(name)) continue;
      try {
        const record = await readRecord(layoutOf(join(this.rootDir, name)));
        if (record && record.id === name) out.push(record);
        else if (record) this.logger.warn({ folder: name, id: record.id }, "skipping sandbox whose record names another id");
      } catch (err) {
        this.logger.warn({ folder: name, err: errorMessage(err) }, "skipping unreadable sandbox registry record");
      }
    }
    return out;
  }

  /**
   * Every registered sandbox matching the filter, including those whose processes died or whose
   * timeout passed: they still hold files until killed, and the reaper must see them.
   */
  async list(filter: Partial<Record<string, string>> = {}): Promise<SandboxSummary[]> {
    await sweepLeftovers(this.rootDir, this.config.killGraceMs, this.logger);
    const wanted = Object.entries(filter).filter((e): e is [string, string] => e[1] !== undefined);
    if (this.config.fleet) wanted.push(["fleet", this.config.fleet]);
    return (await this.records())
      .filter((r) => wanted.every(([k, v]) => r.metadata[k] === v))
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((r) => ({ id: r.id, provider: "local", metadata: { ...r.metadata }, startedAt: r.startedAt, endAt: r.endAt }));
  }

  async kill(id: string): Promise<boolean> {
    return killLocalSandbox(this.rootDir, id, this.config.killGraceMs, this.logger);
  }
}
