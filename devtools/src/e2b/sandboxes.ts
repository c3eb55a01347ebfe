import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { symlink } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { FleetError, errorMessage } from "@fleet/shared/errors";
import type { Logger } from "@fleet/shared/log";
import {
  BRIDGE_DIR_INSIDE,
  layoutOf,
  type LocalSandbox,
  LocalSandboxProvider,
  MARKER_VAR,
} from "@fleet/shared/sandbox";
import { E2B_HOME_PATH, E2B_USER, envdReadable, envdScript } from "./paths.js";

/** One sandbox as the control plane knows it; its processes run in a local provider sandbox of the same id. */
export interface LocalE2BSandbox {
  id: string;
  templateId: string;
  metadata: Record<string, string>;
  startedAt: number;
  endAt: number;
  /** The Unix socket of the sandbox's envd, on the host. */
  envdSocket: string;
  /** What envd requires in X-Access-Token (E2B's envdAccessToken, handed out by create and connect). */
  accessToken: string;
}

export interface SandboxPoolOptions {
  rootDir: string;
  /** Labels this instance's local sandboxes, so its provider lists and reaps only its own. */
  instance: string;
  /** Host folders sandboxes may read (the agent's binary), besides the system ones. */
  readable: readonly string[];
  /** Host loopback endpoints every sandbox may reach (the model server, the fleet's callback url). */
  egress: () => readonly string[];
  maxLifetimeMs: number;
  logger: Logger;
}

const ENVD_READY_MS = 20_000;

/** Whether envd answers /health on its socket. */
function envdHealthy(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: "/health", method: "GET", timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 204);
    });
    req.once("error", () => resolve(false));
    req.once("timeout", () => req.destroy());
    req.end();
  });
}

/**
 * The sandboxes of one local E2B: each a local provider sandbox (bubblewrap isolation, its own
 * user, registered on disk) with envd as its first process, /home/user linked to its home and
 * /home/user/workspace to its workspace, and E2B's lifetime rules on top (timeout from now,
 * capped by a maximum lifetime; expired sandboxes are killed).
 */
export class SandboxPool {
  readonly local: LocalSandboxProvider;
  private readonly sandboxes = new Map<string, LocalE2BSandbox>();

  constructor(private readonly options: SandboxPoolOptions) {
    this.local = new LocalSandboxProvider(
      {
        rootDir: options.rootDir,
        isolation: "bubblewrap",
        fleet: options.instance,
        readable: [...envdReadable(), ...options.readable],
        links: [{ path: E2B_HOME_PATH, target: `${BRIDGE_DIR_INSIDE}/home` }],
      },
      options.logger,
    );
    if (this.local.isolationProblem)
      throw new FleetError("config", `the local E2B needs bubblewrap isolation: ${this.local.isolationProblem}`, {
        retryable: false,
      });
  }

  get size(): number {
    return this.sandboxes.size;
  }

  get(id: string): LocalE2BSandbox | undefined {
    const s = this.sandboxes.get(id);
    return s && s.endAt > Date.now() ? s : undefined;
  }

  all(): LocalE2BSandbox[] {
    return [...this.sandboxes.values()].filter((s) => s.endAt > Date.now());
  }

  async create(spec: {
    templateId: string;
    metadata: Record<string, string>;
    envs: Record<string, string>;
    timeoutMs: number;
  }): Promise<LocalE2BSandbox> {
    const sandbox = await this.local.create({
      // The local registry's labels name this local E2B; the E2B metadata is the control plane's.
      metadata: { fleet: this.options.instance, sessionId: "e2b", projectId: spec.templateId, attempt: "1" },
      envs: spec.envs,
      timeoutMs: this.options.maxLifetimeMs,
      egress: [...this.options.egress()],
    });
    try {
      const socket = await this.startEnvd(sandbox, Object.keys(spec.envs));
      const startedAt = Date.now();
      const record: LocalE2BSandbox = {
        id: sandbox.id,
        templateId: spec.templateId,
        metadata: spec.metadata,
        startedAt,
        endAt: startedAt + Math.min(spec.timeoutMs, this.options.maxLifetimeMs),
        envdSocket: socket,
        accessToken: randomBytes(24).toString("base64url"),
      };
      this.sandboxes.set(record.id, record);
      return record;
    } catch (err) {
      await this.local.kill(sandbox.id).catch(() => undefined);
      throw err;
    }
  }

  private async startEnvd(sandbox: LocalSandbox, envNames: string[]): Promise<string> {
    const layout = layoutOf(join(this.local.rootDir, sandbox.id));
    // /home/user -> /run/fleet/home (the bridge folder, mounted there in every process) -> the home,
    // and the workspace inside the home, as E2B lays them out.
    await symlink(layout.home, join(layout.bridge, "home"));
    await symlink(layout.workspace, join(layout.home, "workspace"));
    const options = {
      sandboxId: sandbox.id,
      home: E2B_HOME_PATH,
      user: E2B_USER,
      sandboxEnvNames: envNames,
      markerVar: MARKER_VAR,
    };
    await sandbox.startBackground({
      command: process.execPath,
      args: [envdScript(), `${BRIDGE_DIR_INSIDE}/envd.sock`, JSON.stringify(options)],
    });
    const socket = join(layout.bridge, "envd.sock");
    const until = Date.now() + ENVD_READY_MS;
    while (!(existsSync(socket) && (await envdHealthy(socket)))) {
      if (Date.now() > until)
        throw new FleetError("sandbox", `envd of sandbox ${sandbox.id} did not start (see ${layout.logs})`, {
          retryable: true,
        });
      await new Promise((r) => setTimeout(r, 50));
    }
    return socket;
  }

  /** E2B's set-timeout: the sandbox ends `timeoutMs` from now, never past its maximum lifetime. */
  setTimeout(id: string, timeoutMs: number): boolean {
    const s = this.get(id);
    if (!s) return false;
    s.endAt = Math.min(Date.now() + timeoutMs, s.startedAt + this.options.maxLifetimeMs);
    return true;
  }

  /** Ends a sandbox and everything in it; false when it was not running. */
  async kill(id: string): Promise<boolean> {
    const s = this.sandboxes.get(id);
    if (!s) return false;
    this.sandboxes.delete(id);
    await this.local.kill(id).catch((err: unknown) => {
      this.options.logger.warn({ sandboxId: id, err: errorMessage(err) }, "local E2B: kill failed");
    });
    return true;
  }

  /** Kills the sandboxes whose timeout has passed; returns how many. */
  async expire(): Promise<number> {
    const now = Date.now();
    const due = [...this.sandboxes.values()].filter((s) => s.endAt <= now);
    for (const s of due) {
      this.options.logger.info({ sandboxId: s.id }, "local E2B: sandbox timed out");
      await this.kill(s.id);
    }
    return due.length;
  }

  async killAll(): Promise<void> {
    for (const id of [...this.sandboxes.keys()]) await this.kill(id);
    // Anything of this instance's left on disk (a create cut short) goes too.
    for (const s of await this.local.list().catch(() => [])) await this.local.kill(s.id).catch(() => undefined);
  }
}
