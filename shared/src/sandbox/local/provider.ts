import { execFile } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { FleetError, errorMessage } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import type { SandboxCreateSpec, SandboxProvider, SandboxSummary } from "../port.js";
import { checkCreateSpec, checkTimeout, oldestFirst } from "../spec.js";
import { ephemeralPortRange, resolveLocalConfig, type LocalSandboxConfig, type ResolvedLocalConfig } from "./config.js";
import { startBridges } from "./host-bridges.js";
import { isolationProblem, type IsolationMode } from "./isolation.js";
import { pickPort } from "./ports.js";
import { CREATING_PREFIX, killLocalSandbox, recordAlive, sweepLeftovers } from "./reap.js";
import { egressPort } from "./bridges.js";
import { terminateSandbox } from "./procs.js";
import {
  LOCAL_ID,
  layoutOf,
  newSandboxId,
  readRecord,
  writeEnvs,
  writeRecord,
  type RegistryRecord,
  type SandboxLayout,
} from "./registry.js";
import { LocalSandbox } from "./sandbox.js";
import { sandboxSeccompFilter } from "./seccomp.js";
import { chownTree, pickUid } from "./users.js";

const run = promisify(execFile);

/**
 * Sandboxes as detached process groups on this host, each in its own folder below rootDir and
 * registered there, so any process on the host can list, reach and kill them.
 */
export class LocalSandboxProvider implements SandboxProvider {
  readonly name = "local";
  /** What isolates sandboxes from the host and each other here: bubblewrap namespaces, or nothing. */
  readonly isolation: IsolationMode;
  /** Why isolated sandboxes cannot be created on this host (create() refuses, saying so). */
  readonly isolationProblem: string | undefined;
  readonly rootDir: string;
  private readonly config: ResolvedLocalConfig;
  private readonly seccompFile: string;
  /** Ports and uids handed out by this process but not yet visible in a registry record. */
  private readonly pendingPorts = new Set<number>();
  private readonly pendingUids = new Set<number>();

  constructor(
    config: LocalSandboxConfig,
    private readonly logger: Logger,
  ) {
    this.config = resolveLocalConfig(config);
    this.rootDir = this.config.rootDir;
    this.isolation = this.config.isolation;
    this.seccompFile = join(this.rootDir, ".seccomp.bpf");
    if (this.isolation === "none") {
      this.isolationProblem = undefined;
      logger.warn(
        { rootDir: this.rootDir },
        "UNISOLATED local sandboxes (FLEET_SANDBOX_ISOLATION=none): agents run as the fleet's user on the host's network; development only",
      );
    } else {
      this.isolationProblem = isolationProblem(this.config.tools, this.rootDir, this.config.uidRange[0]);
      if (this.isolationProblem)
        logger.error(
          { rootDir: this.rootDir, problem: this.isolationProblem },
          "local sandboxes cannot be isolated here: creating one will fail",
        );
      // Not secret, and the same for every sandbox, read by bubblewrap through a descriptor. Every
      // fleet process writes it; a rename replaces it whole, so no reader ever sees half a filter.
      else {
        const tmp = `${this.seccompFile}.${process.pid}.tmp`;
        writeFileSync(tmp, sandboxSeccompFilter(), { mode: 0o644 });
        renameSync(tmp, this.seccompFile);
      }
    }
    const [lo, hi] = this.config.portRange;
    const ephemeral = ephemeralPortRange();
    if (ephemeral && lo <= ephemeral[1] && hi >= ephemeral[0]) {
      logger.warn(
        { portRange: [lo, hi], ephemeral },
        "agent port range overlaps the ephemeral range: agent servers may find their port taken",
      );
    }
  }

  private sandbox(record: Pick<RegistryRecord, "id" | "agentPort">): LocalSandbox {
    return new LocalSandbox(record.id, record.agentPort, {
      config: this.config,
      isolation: this.isolation,
      layout: layoutOf(join(this.rootDir, record.id)),
      seccompFile: this.seccompFile,
      logger: this.logger,
      kill: (id) => this.kill(id),
    });
  }

  async create(spec: SandboxCreateSpec): Promise<LocalSandbox> {
    const { metadata, envs } = checkCreateSpec(spec, this.config.fleet);
    const isolated = this.isolation === "bubblewrap";
    if (isolated && this.isolationProblem) {
      throw new FleetError(
        "config",
        `cannot isolate a local sandbox: ${this.isolationProblem} (FLEET_SANDBOX_ISOLATION=none runs agents unisolated, for development only)`,
        { retryable: false },
      );
    }
    if (!isolated)
      this.logger.warn(
        "sessionId" in metadata ? { sessionId: metadata.sessionId } : { pool: metadata.pool },
        "creating an UNISOLATED local sandbox: its agent can reach everything the fleet can",
      );
    const egress = isolated ? [...new Set((spec.egress ?? []).map(egressPort))] : [];
    const records = await this.records();
    if (
      this.config.maxSandboxes !== undefined &&
      records.filter((r) => recordAlive(r)).length >= this.config.maxSandboxes
    ) {
      throw new FleetError("sandbox", `local sandbox capacity reached (${this.config.maxSandboxes})`, {
        retryable: true,
      });
    }
    const id = newSandboxId();
    // Built under a dot-name and renamed into place: a sandbox is registered complete or not at all.
    const staging = layoutOf(join(this.rootDir, `${CREATING_PREFIX}${id}`));
    let port: number | undefined;
    let uid: number | undefined;
    const bridges: number[] = [];
    try {
      await this.prepareFolders(staging);
      await this.initGit(staging);
      port = await pickPort(
        this.config.portRange,
        new Set([...records.map((r) => r.agentPort), ...this.pendingPorts, ...egress]),
      );
      this.pendingPorts.add(port);
      if (isolated) {
        uid = pickUid(
          this.config.uidRange,
          new Set([...records.flatMap((r) => (r.uid === undefined ? [] : [r.uid])), ...this.pendingUids]),
        );
        this.pendingUids.add(uid);
        for (const dir of [staging.workspace, staging.home, staging.tmp, staging.bridge]) await chownTree(dir, uid);
      }
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
        ...(uid === undefined ? {} : { uid }),
        egress,
        processes: [],
      };
      if (uid !== undefined) {
        const started = await startBridges(this.config, staging, id, {
          agentPort: port,
          egress,
          uid,
          endAt: record.endAt,
        });
        bridges.push(...started.map((p) => p.pgid));
        record.processes.push(...started);
      }
      await writeEnvs(staging, envs);
      await writeRecord(staging, record);
      await rename(staging.dir, join(this.rootDir, id));
      this.logger.info(
        { sandboxId: id, agentPort: port, isolation: this.isolation, uid, egress, endAt: record.endAt },
        "local sandbox created",
      );
      return this.sandbox(record);
    } catch (err) {
      if (bridges.length > 0) await terminateSandbox(id, bridges, 0);
      await rm(staging.dir, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof FleetError) throw err;
      throw new FleetError("sandbox", `cannot create local sandbox: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    } finally {
      if (port !== undefined) this.pendingPorts.delete(port);
      if (uid !== undefined) this.pendingUids.delete(uid);
    }
  }

  private async prepareFolders(layout: SandboxLayout): Promise<void> {
    // Searchable by the sandbox's user on the way to its folders; the record, secrets and logs stay the fleet's.
    await mkdir(layout.dir, { mode: 0o711 });
    for (const dir of [layout.workspace, layout.tmp, layout.bridge]) await mkdir(dir, { mode: 0o700 });
    await mkdir(layout.logs, { mode: 0o700 });
    for (const sub of [".config", ".cache", join(".local", "share"), join(".local", "state")]) {
      await mkdir(join(layout.home, sub), { recursive: true, mode: 0o700 });
    }
  }

  /** A repository with one empty commit, so the agent's changes show up as a diff against it. */
  private async initGit(layout: SandboxLayout): Promise<void> {
    const env = { PATH: this.config.path, HOME: layout.home, LANG: this.config.lang, GIT_CONFIG_NOSYSTEM: "1" };
    const git = (...args: string[]) =>
      run(this.config.gitBin, ["-C", layout.workspace, ...args], { env, timeout: 30_000 });
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
      throw new FleetError("sandbox", `cannot read ${this.rootDir}: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    });
    const out: RegistryRecord[] = [];
    for (const name of names) {
      if (!LOCAL_ID.test(name)) continue;
      try {
        const record = await readRecord(layoutOf(join(this.rootDir, name)));
        if (record && record.id === name) out.push(record);
        else if (record)
          this.logger.warn({ folder: name, id: record.id }, "skipping sandbox whose record names another id");
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
      .map((r) => ({
        id: r.id,
        provider: "local",
        metadata: { ...r.metadata },
        startedAt: r.startedAt,
        endAt: r.endAt,
      }))
      .sort(oldestFirst);
  }

  /**
   * Local sandboxes have no lifetime cap (they are created for the session's whole life), and the
   * timeout they were created with is enforced by every process they run: it cannot move. A timeout
   * that ends within it is already honoured; one past it is refused.
   */
  async setTimeout(id: string, timeoutMs: number): Promise<boolean> {
    checkTimeout(timeoutMs, undefined);
    if (!LOCAL_ID.test(id)) return false;
    const record = await readRecord(layoutOf(join(this.rootDir, id)));
    if (!record || !recordAlive(record)) return false;
    if (Date.now() + timeoutMs > record.endAt)
      throw new FleetError(
        "sandbox",
        `local sandbox ${id} cannot outlive the timeout it was created with (${new Date(record.endAt).toISOString()})`,
        { retryable: false },
      );
    return true;
  }

  async kill(id: string): Promise<boolean> {
    return killLocalSandbox(this.rootDir, id, this.config.killGraceMs, this.logger);
  }
}
