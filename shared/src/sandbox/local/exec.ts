import { spawn, type StdioOptions } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { join } from "node:path";
import { FleetError } from "../../errors/index.js";
import { badPath, relativeDirSegments } from "../paths.js";
import type { CommandResult } from "../port.js";
import { MARKER_VAR } from "./procs.js";
import type { SandboxLayout } from "./registry.js";

/**
 * How a sandbox process is started: a fresh environment (nothing of the fleet's own, so no secret
 * leaks in), its own session and process group, and coreutils `timeout` around it so the hard
 * limit holds even when no fleet process is left to enforce it.
 */

/** Variables the provider itself sets; everything else comes from the create spec or the command. */
export const LOCAL_BASE_ENV = [
  "PATH",
  "HOME",
  "LANG",
  "TMPDIR",
  "XDG_CONFIG_HOME",
  "XDG_DATA_HOME",
  "XDG_CACHE_HOME",
  "XDG_STATE_HOME",
  "PWD",
  MARKER_VAR,
] as const;

export function sandboxEnv(
  base: { path: string; lang: string },
  layout: SandboxLayout,
  id: string,
  cwd: string,
  ...extra: Array<Record<string, string> | undefined>
): Record<string, string> {
  return {
    // bubblewrap sets PWD on --chdir; setting it here keeps both isolation modes alike.
    PWD: cwd,
    PATH: base.path,
    HOME: layout.home,
    LANG: base.lang,
    TMPDIR: layout.tmp,
    XDG_CONFIG_HOME: join(layout.home, ".config"),
    XDG_DATA_HOME: join(layout.home, ".local", "share"),
    XDG_CACHE_HOME: join(layout.home, ".cache"),
    XDG_STATE_HOME: join(layout.home, ".local", "state"),
    ...Object.assign({}, ...extra),
    // Last, so no spec can unset it: it is how a killer finds every process of this sandbox.
    [MARKER_VAR]: id,
  };
}

/** `timeout` takes fractional seconds; it must get a positive bound or it would never fire. */
export function timeoutArgs(timeoutBin: string, limitMs: number): string[] {
  return [timeoutBin, "--kill-after=5s", `${Math.max(0.001, limitMs / 1000).toFixed(3)}s`];
}

/** A command's working folder: relative to the workspace, existing, and really inside it. */
export async function resolveCwd(workspace: string, cwd: string | undefined): Promise<string> {
  const segments = relativeDirSegments(cwd);
  const base = await realpath(workspace);
  if (segments.length === 0) return base;
  let real: string;
  try {
    real = await realpath(join(base, ...segments));
  } catch {
    throw badPath(cwd ?? "", "working folder does not exist");
  }
  if (real !== base && !real.startsWith(`${base}/`)) throw badPath(cwd ?? "", "working folder outside the workspace");
  if (!(await stat(real)).isDirectory()) throw badPath(cwd ?? "", "working folder is not a folder");
  return real;
}

function spawnFailed(argv: readonly string[], err: unknown): FleetError {
  return new FleetError("sandbox", `cannot start ${argv[0]}: ${(err as Error).message}`, {
    retryable: false,
    cause: err,
  });
}

/** Starts a detached process group appending to `logFile`; resolves with its pid (= its pgid). */
export function startDetached(
  argv: readonly string[],
  opts: { cwd: string; env: Record<string, string>; logFile: string; extraFd?: number | undefined },
): Promise<number> {
  const fd = openSync(opts.logFile, "a", 0o640);
  return new Promise<number>((resolve, reject) => {
    const stdio: StdioOptions = ["ignore", fd, fd, ...(opts.extraFd === undefined ? [] : [opts.extraFd])];
    const child = spawn(argv[0] as string, argv.slice(1), { cwd: opts.cwd, env: opts.env, detached: true, stdio });
    child.once("error", (err) => reject(spawnFailed(argv, err)));
    child.once("spawn", () => {
      child.unref();
      resolve(child.pid as number);
    });
  }).finally(() => closeSync(fd));
}

class Capped {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private dropped = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    const room = this.max - this.kept;
    if (room > 0) {
      const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, chunk.length - Math.max(0, room));
  }
  text(): string {
    const s = Buffer.concat(this.chunks).toString("utf8");
    return this.dropped > 0 ? `${s}\n[… ${this.dropped} more bytes not captured]` : s;
  }
}

export interface BoundedResult extends CommandResult {
  timedOut: boolean;
  pid: number;
}

/** Runs a detached process group to completion, capturing (capped) output. */
export function runBounded(
  argv: readonly string[],
  opts: {
    cwd: string;
    env: Record<string, string>;
    timeoutMs: number;
    maxOutputBytes: number;
    /** Handed to the child as descriptor 3 (the seccomp filter bubblewrap reads). */
    extraFd?: number | undefined;
    onStart?: (pid: number) => void;
  },
): Promise<BoundedResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const stdio: StdioOptions = ["ignore", "pipe", "pipe", ...(opts.extraFd === undefined ? [] : [opts.extraFd])];
    const child = spawn(argv[0] as string, argv.slice(1), { cwd: opts.cwd, env: opts.env, detached: true, stdio });
    const out = new Capped(opts.maxOutputBytes);
    const err = new Capped(opts.maxOutputBytes);
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.on("data", (c: Buffer) => err.push(c));
    // Belt and braces: `timeout` inside the group normally ends it first.
    const guard = setTimeout(() => {
      if (child.pid) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }, opts.timeoutMs + 10_000);
    child.once("spawn", () => opts.onStart?.(child.pid as number));
    child.once("error", (e) => {
      clearTimeout(guard);
      reject(spawnFailed(argv, e));
    });
    child.once("close", (code, signal) => {
      clearTimeout(guard);
      const exitCode = code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
      const timedOut =
        Date.now() - started >= opts.timeoutMs && (exitCode === 124 || exitCode === 137 || signal !== null);
      resolve({ exitCode, stdout: out.text(), stderr: err.text(), timedOut, pid: child.pid ?? 0 });
    });
  });
}
