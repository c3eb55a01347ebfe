import { closeSync, openSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { basename, dirname, isAbsolute, join } from "node:path";
import { FleetError, errorMessage } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import { checkEnvs, relativeSegments } from "../paths.js";
import type { CommandResult, CommandSpec, Sandbox, SandboxFile } from "../port.js";
import type { ResolvedLocalConfig } from "./config.js";
import { resolveCwd, runBounded, sandboxEnv, startDetached, timeoutArgs } from "./exec.js";
import { readInside, writeInside } from "./files.js";
import { bridgedCommand } from "./bridges.js";
import { isolatedArgv, untraversable, type IsolationMode } from "./isolation.js";
import { terminateSandbox } from "./procs.js";
import { recordAlive } from "./reap.js";
import {
  goneError,
  readEnvs,
  readRecord,
  withRecordLock,
  writeRecord,
  type RegistryRecord,
  type SandboxLayout,
} from "./registry.js";

const DEFAULT_RUN_TIMEOUT_MS = 60_000;

export interface LocalSandboxDeps {
  config: ResolvedLocalConfig;
  isolation: IsolationMode;
  layout: SandboxLayout;
  /** The seccomp filter file isolated commands run under. */
  seccompFile: string;
  logger: Logger;
  kill: (id: string) => Promise<boolean>;
}

/**
 * One local sandbox, as seen by any process: every call re-reads the registry, so an instance
 * from connect() in another process sees the same state as the creator's.
 */
export class LocalSandbox implements Sandbox {
  readonly provider = "local";
  readonly workspace: string;
  readonly home: string;

  constructor(
    readonly id: string,
    readonly agentPort: number,
    private readonly deps: LocalSandboxDeps,
  ) {
    this.workspace = deps.layout.workspace;
    this.home = deps.layout.home;
  }

  private async record(): Promise<RegistryRecord> {
    const record = await readRecord(this.deps.layout);
    if (!record) throw goneError(this.id);
    return record;
  }

  /** Time left before the hard timeout; starting anything after it would outlive the promise. */
  private async remainingMs(): Promise<number> {
    const left = (await this.record()).endAt - Date.now();
    if (left <= 0) throw new FleetError("sandbox", `sandbox ${this.id} has reached its timeout`, { retryable: false });
    return left;
  }

  private async base(which: "workspace" | "home"): Promise<string> {
    try {
      return await realpath(which === "home" ? this.home : this.workspace);
    } catch (err) {
      throw goneError(this.id, err);
    }
  }

  async writeFiles(files: readonly SandboxFile[], options: { base?: "workspace" | "home" } = {}): Promise<void> {
    // Every path is checked before the first write, so one bad path leaves nothing half-restored.
    for (const f of files) relativeSegments(f.path);
    const { uid } = await this.record();
    const base = await this.base(options.base ?? "workspace");
    for (const f of files) await writeInside(base, f.path, f.content, uid);
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    relativeSegments(path);
    await this.record();
    return readInside(await this.base("workspace"), path);
  }

  /**
   * The argv of a sandbox command, and the seccomp filter's descriptor to hand it (isolated only;
   * the caller closes it once the child has started). Background commands of an isolated sandbox
   * start the sandbox side of its network bridges first.
   */
  private async prepare(
    command: CommandSpec,
    limitMs: number,
    background: boolean,
  ): Promise<{ argv: string[]; cwd: string; env: Record<string, string>; filterFd?: number }> {
    const { config, layout, isolation } = this.deps;
    const cmdEnvs = checkEnvs(command.envs, "command envs");
    if (typeof command.command !== "string" || command.command.length === 0 || command.command.includes("\0")) {
      throw new FleetError("sandbox", "invalid command", { retryable: false });
    }
    if (command.args.some((a) => typeof a !== "string" || a.includes("\0"))) {
      throw new FleetError("sandbox", "command arguments must be strings without NUL bytes", { retryable: false });
    }
    const cwd = await resolveCwd(this.workspace, command.cwd).catch((err: unknown) => {
      throw err instanceof FleetError ? err : goneError(this.id, err);
    });
    const record = await this.record();
    const env = sandboxEnv(config, layout, this.id, cwd, await readEnvs(layout, this.id), cmdEnvs);
    const timeout = timeoutArgs(config.timeoutBin, limitMs);
    if (isolation === "none" || record.uid === undefined)
      return { argv: [...timeout, command.command, ...command.args], cwd, env };
    // The sandbox's own user starts the program: a folder it cannot search would end it at once.
    const blocked = isAbsolute(command.command) ? untraversable(dirname(command.command)) : undefined;
    if (blocked) {
      throw new FleetError(
        "sandbox",
        `the sandbox's user cannot reach ${command.command}: ${blocked} is not searchable by others (chmod o+x)`,
        { retryable: false },
      );
    }
    const inner = background ? bridgedCommand(record.agentPort, record.egress, command.command, command.args) : command;
    const argv = isolatedArgv({
      tools: config.tools,
      view: config.view,
      rootDir: config.rootDir,
      binds: { workspace: layout.workspace, home: layout.home, tmp: layout.tmp, bridge: layout.bridge },
      uid: record.uid,
      seccompFd: 3,
      cwd,
      command: inner.command,
      args: inner.args,
      program: command.command,
    });
    return { argv: [...timeout, ...argv], cwd, env, filterFd: openSync(this.deps.seccompFile, "r") };
  }

  async run(command: CommandSpec, options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const remaining = await this.remainingMs();
    const wanted = options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
    const limit = Math.min(wanted, remaining);
    const { argv, cwd, env, filterFd } = await this.prepare(command, limit, false);
    const result = await runBounded(argv, {
      cwd,
      env,
      timeoutMs: limit,
      maxOutputBytes: this.deps.config.maxOutputBytes,
      extraFd: filterFd,
    }).finally(() => {
      if (filterFd !== undefined) closeSync(filterFd);
    });
    if (result.timedOut) {
      const expired = limit < wanted;
      throw new FleetError(
        "sandbox",
        expired
          ? `sandbox ${this.id} reached its timeout while running ${command.command}`
          : `${command.command} timed out after ${limit} ms`,
        { retryable: !expired, details: { stdout: result.stdout.slice(-2_000), stderr: result.stderr.slice(-2_000) } },
      );
    }
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }

  async startBackground(command: CommandSpec): Promise<{ pid: number }> {
    const remaining = await this.remainingMs();
    const { argv, cwd, env, filterFd } = await this.prepare(command, remaining, true);
    const { layout, logger } = this.deps;
    const seq = (await this.record()).processes.length + 1;
    const log = join(
      layout.logs,
      `${seq}-${basename(command.command)
        .replace(/[^A-Za-z0-9._-]/g, "_")
        .slice(0, 40)}.log`,
    );
    let pgid: number;
    try {
      pgid = await startDetached(argv, { cwd, env, logFile: log, extraFd: filterFd });
    } catch (err) {
      throw err instanceof FleetError ? err : goneError(this.id, err);
    } finally {
      if (filterFd !== undefined) closeSync(filterFd);
    }
    try {
      await withRecordLock(layout, this.id, async () => {
        const record = await this.record();
        record.processes.push({ pgid, command: command.command, log: basename(log), startedAt: Date.now() });
        await writeRecord(layout, record);
      });
    } catch (err) {
      // Unrecorded means unkillable by anyone else: end it now rather than leak it.
      await terminateSandbox(this.id, [pgid], 0);
      logger.warn(
        { sandboxId: this.id, pgid, err: errorMessage(err) },
        "background process ended: could not record it",
      );
      throw err;
    }
    logger.info({ sandboxId: this.id, pgid, command: command.command }, "background process started");
    return { pid: pgid };
  }

  url(port: number): string {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new FleetError("sandbox", `invalid port ${port}`, { retryable: false });
    return `http://127.0.0.1:${port}`;
  }

  async isAlive(): Promise<boolean> {
    try {
      const record = await readRecord(this.deps.layout);
      return record !== null && recordAlive(record);
    } catch {
      return false;
    }
  }

  async kill(): Promise<void> {
    await this.deps.kill(this.id);
  }
}
