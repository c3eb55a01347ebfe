import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, statSync } from "node:fs";

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Outlives this process (for `./fleet infra up`); otherwise it dies with its parent. */
  persistent?: boolean;
}

export interface ManagedProcess {
  name: string;
  pid: number;
  logFile: string;
  /** Size of the log file before this process started: what it wrote begins here. */
  logOffset: number;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  readonly running: boolean;
  stop(graceMs?: number): Promise<void>;
}

let pdeathsig: boolean | undefined;

/** util-linux `setpriv --pdeathsig` makes the kernel signal the child when its parent dies. */
function hasPdeathsig(): boolean {
  pdeathsig ??= spawnSync("setpriv", ["--help"], { stdio: "ignore" }).status === 0;
  return pdeathsig;
}

export function startProcess(spec: ProcessSpec): ManagedProcess {
  const logOffset = existsSync(spec.logFile) ? statSync(spec.logFile).size : 0;
  const fd = openSync(spec.logFile, "a");
  const persistent = spec.persistent ?? false;
  const [command, args] =
    !persistent && hasPdeathsig()
      ? ["setpriv", ["--pdeathsig", "TERM", "--", spec.command, ...spec.args]]
      : [spec.command, spec.args];
  const child = spawn(command, args, {
    cwd: spec.cwd,
    env: spec.env ?? process.env,
    stdio: ["ignore", fd, fd],
    detached: persistent,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  const pid = child.pid;
  let running = true;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      running = false;
      resolve(code ?? signal ?? "unknown");
    });
    child.once("error", () => {
      running = false;
      resolve("spawn-error");
    });
  });
  if (persistent) child.unref();
  return {
    name: spec.name,
    pid,
    logFile: spec.logFile,
    logOffset,
    exited,
    get running() {
      return running;
    },
    async stop(graceMs = 5_000) {
      if (!running) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * True while the process runs. A zombie counts as gone: where PID 1 does not reap orphans (some
 * containers), an ended process that `./fleet infra up` left behind stays a zombie forever, and
 * `kill(pid, 0)` would call it alive.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    // No /proc (not Linux): the signal check above is all there is.
    return true;
  }
}

/** Stops a process that is not our child (started by an earlier `./fleet infra up`). */
export async function stopPid(pid: number, graceMs = 5_000): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    if (!isAlive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

export function logTail(file: string, lines = 20): string {
  if (!existsSync(file)) return "";
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** What a process wrote to its log since it started (earlier runs may share the file). */
export function ownLog(proc: Pick<ManagedProcess, "logFile" | "logOffset">): string {
  if (!existsSync(proc.logFile)) return "";
  return readFileSync(proc.logFile).subarray(proc.logOffset).toString("utf8");
}
