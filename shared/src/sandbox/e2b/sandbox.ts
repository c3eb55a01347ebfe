import type { Sandbox as SdkSandbox } from "@e2b/code-interpreter";
import { FleetError } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import { checkEnvs, joinPosix, relativeDirSegments, relativeSegments } from "../paths.js";
import type { CommandResult, CommandSpec, Sandbox, SandboxFile } from "../port.js";
import { shellCommand, shellQuote } from "../shell.js";
import { isNotFound, mapE2BError } from "./errors.js";
import { checkGuardOutput, pathGuardLine } from "./guard.js";

export const E2B_HOME = "/home/user";
export const E2B_WORKSPACE = `${E2B_HOME}/workspace`;
const LOG_DIR = `${E2B_HOME}/.fleet/logs`;
const DEFAULT_RUN_TIMEOUT_MS = 60_000;
const GUARD_BATCH = 200;

/** Checked, absolute path inside the E2B sandbox for a workspace- or home-relative path. */
export function e2bPath(path: string, base: "workspace" | "home" = "workspace"): string {
  return joinPosix(base === "home" ? E2B_HOME : E2B_WORKSPACE, relativeSegments(path));
}

export function e2bCwd(cwd: string | undefined): string {
  return joinPosix(E2B_WORKSPACE, relativeDirSegments(cwd));
}

/** The shell line for a background process: its output appended to a log file in the sandbox. */
export function backgroundLine(command: CommandSpec, logName: string, logDir = LOG_DIR): string {
  const log = `${logDir}/${logName}`;
  return `mkdir -p ${shellQuote(logDir)} && exec ${shellCommand(command.command, command.args)} >> ${shellQuote(log)} 2>&1`;
}

function toArrayBuffer(content: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(content.byteLength);
  copy.set(content);
  return copy.buffer;
}

/** A sandbox in E2B's cloud. The SDK's commands take a shell string, so every word is quoted here. */
export class E2BSandbox implements Sandbox {
  readonly provider = "e2b";
  readonly workspace = E2B_WORKSPACE;
  readonly home = E2B_HOME;
  readonly id: string;
  private started = 0;

  constructor(
    private readonly sbx: SdkSandbox,
    readonly agentPort: number,
    private readonly logger: Logger,
    private readonly portUrl?: string,
  ) {
    this.id = sbx.sandboxId;
  }

  /** Refuses paths that a symlink inside the sandbox would carry out of `base`. */
  private async guard(base: string, absPaths: readonly string[], originals: readonly string[]): Promise<void> {
    for (let i = 0; i < absPaths.length; i += GUARD_BATCH) {
      const line = pathGuardLine(base, absPaths.slice(i, i + GUARD_BATCH));
      const r = await this.run({ command: "sh", args: ["-c", line] }, { timeoutMs: 30_000 });
      if (r.exitCode !== 0)
        throw new FleetError("sandbox", `E2B path check failed (${r.exitCode}): ${r.stderr.slice(-300)}`, {
          retryable: true,
        });
      checkGuardOutput(r.stdout, originals.slice(i, i + GUARD_BATCH));
    }
  }

  async writeFiles(files: readonly SandboxFile[], options: { base?: "workspace" | "home" } = {}): Promise<void> {
    const which = options.base ?? "workspace";
    const entries = files.map((f) => ({
      path: e2bPath(f.path, which),
      data: typeof f.content === "string" ? f.content : toArrayBuffer(f.content),
    }));
    if (entries.length === 0) return;
    await this.guard(
      which === "home" ? E2B_HOME : E2B_WORKSPACE,
      entries.map((e) => e.path),
      files.map((f) => f.path),
    );
    await this.sbx.files.write(entries).catch((err: unknown) => {
      throw mapE2BError(err, "files.write");
    });
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    const abs = e2bPath(path);
    await this.guard(E2B_WORKSPACE, [abs], [path]);
    try {
      return await this.sbx.files.read(abs, { format: "bytes" });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw mapE2BError(err, "files.read");
    }
  }

  async run(command: CommandSpec, options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const line = shellCommand(command.command, command.args);
    const opts = {
      cwd: e2bCwd(command.cwd),
      envs: checkEnvs(command.envs, "command envs"),
      timeoutMs: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    };
    try {
      const r = await this.sbx.commands.run(line, opts);
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      // A non-zero exit is a result, not a failure of the sandbox.
      const e = err as { name?: unknown; exitCode?: unknown; stdout?: unknown; stderr?: unknown };
      if (e?.name === "CommandExitError" && typeof e.exitCode === "number") {
        return { exitCode: e.exitCode, stdout: String(e.stdout ?? ""), stderr: String(e.stderr ?? "") };
      }
      throw mapE2BError(err, `run ${command.command}`);
    }
  }

  async startBackground(command: CommandSpec): Promise<{ pid: number }> {
    this.started += 1;
    const name = `${this.started}-${
      command.command
        .split("/")
        .pop()
        ?.replace(/[^A-Za-z0-9._-]/g, "_")
        .slice(0, 40) || "cmd"
    }.log`;
    const opts = {
      background: true as const,
      cwd: e2bCwd(command.cwd),
      envs: checkEnvs(command.envs, "command envs"),
      timeoutMs: 0,
    };
    try {
      const handle = await this.sbx.commands.run(backgroundLine(command, name), opts);
      // The process keeps running in the sandbox; only the output stream to this process stops.
      await handle.disconnect();
      this.logger.info({ sandboxId: this.id, pid: handle.pid, command: command.command }, "background process started");
      return { pid: handle.pid };
    } catch (err) {
      throw mapE2BError(err, `start ${command.command}`);
    }
  }

  url(port: number): string {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new FleetError("sandbox", `invalid port ${port}`, { retryable: false });
    if (this.portUrl)
      return this.portUrl.replaceAll("{sandboxId}", encodeURIComponent(this.id)).replaceAll("{port}", String(port));
    return `https://${this.sbx.getHost(port)}`;
  }

  async isAlive(): Promise<boolean> {
    try {
      return await this.sbx.isRunning();
    } catch (err) {
      if (isNotFound(err)) return false;
      throw mapE2BError(err, "isRunning");
    }
  }

  async kill(): Promise<void> {
    try {
      await this.sbx.kill();
    } catch (err) {
      if (!isNotFound(err)) throw mapE2BError(err, "kill");
    }
  }
}
