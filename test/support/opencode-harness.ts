import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { AgentRuntime, ModelSettings } from "../../shared/src/agent/index.js";

/**
 * A real `opencode serve` for tests, started the way a local sandbox would: own HOME (pre-seeded with
 * the runtime's home files), a workspace that is a git repository with a first commit, the runtime's
 * launch command, a detached process group killed as a whole at the end.
 */
export interface OpencodeServer {
  readonly baseUrl: string;
  readonly port: number;
  readonly workspace: string;
  readonly home: string;
  readonly password: string;
  /** When the process was spawned (ms since the epoch). */
  readonly startedAt: number;
  /** When it printed its "listening" line. */
  readonly listeningAt: number;
  output(): string;
  stop(): Promise<void>;
}

/** A port outside the ephemeral range that nothing listens on right now. */
export async function freePort(min = 20_000, max = 29_999): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = min + Math.floor(Math.random() * (max - min + 1));
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once("error", () => resolve(false));
      probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port in ${min}-${max}`);
}

function gitWorkspace(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]): void =>
    void execFileSync("git", ["-c", "user.name=fleet", "-c", "user.email=fleet@localhost", ...args], {
      cwd: dir,
      stdio: "ignore",
    });
  git("init", "-q");
  writeFileSync(join(dir, "README.md"), "# test workspace\n");
  git("add", "-A");
  git("commit", "-q", "-m", "initial commit");
}

export async function startOpencodeServer(options: {
  runtime: AgentRuntime;
  model: ModelSettings;
  password: string;
  /** How long to wait for the "listening" line (the port may be taken: then another is tried). */
  listenTimeoutMs?: number;
}): Promise<OpencodeServer> {
  const root = mkdtempSync(join(tmpdir(), "fleet-opencode-"));
  const home = join(root, "home");
  const workspace = join(root, "workspace");
  gitWorkspace(workspace);
  for (const f of options.runtime.homeFiles()) {
    const target = join(home, f.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, f.content);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const spec = options.runtime.launchCommand({ port, password: options.password, workspace, model: options.model });
    const startedAt = Date.now();
    const child = spawn(spec.command, spec.args, {
      cwd: workspace,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", HOME: home, ...spec.envs },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const collect = (d: Buffer): void => {
      out += d.toString();
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    try {
      const listeningAt = await waitListening(child, () => out, options.listenTimeoutMs ?? 60_000);
      return {
        baseUrl: `http://127.0.0.1:${port}`,
        port,
        workspace,
        home,
        password: options.password,
        startedAt,
        listeningAt,
        output: () => out,
        stop: async () => {
          await killGroup(child);
          if (!process.env.FLEET_TEST_KEEP) rmSync(root, { recursive: true, force: true });
        },
      };
    } catch (err) {
      lastError = err;
      await killGroup(child);
    }
  }
  rmSync(root, { recursive: true, force: true });
  throw lastError;
}

function waitListening(child: ChildProcess, output: () => string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`opencode did not listen within ${timeoutMs} ms:\n${output()}`)),
      timeoutMs,
    );
    const onData = (): void => {
      if (/opencode server listening on http/.test(output())) done(undefined, Date.now());
    };
    const onExit = (code: number | null): void =>
      done(new Error(`opencode exited (${code}) before listening:\n${output()}`));
    function done(err?: Error, at?: number): void {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      if (err) reject(err);
      else resolve(at as number);
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

/** SIGTERM to the whole group, SIGKILL if anything is left after 3 s. */
async function killGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 3_000);
  await exited;
  clearTimeout(timer);
  signal("SIGKILL"); // children that outlived the leader
}
