import { z } from "zod";

/**
 * Where an agent server runs. Adapters: `local` (a process group on this host, registered on disk)
 * and `e2b` (cloud sandboxes). No driver type crosses this port.
 */

/** Labels every fleet sandbox carries, so a reaper can list them and match them to sessions. */
export const SessionSandboxMetadata = z.object({
  fleet: z.string().min(1),
  sessionId: z.string().min(1),
  projectId: z.string().min(1),
  attempt: z.string().regex(/^\d+$/),
});
/**
 * A warm-pool sandbox has no session when it is created: it names its pool key, that it was created
 * warm, and the spawner instance that owns it; the pool's record in the store says whether (and by
 * which session) it was claimed since, so a reaper can tell a claimed one from an abandoned one.
 */
export const PooledSandboxMetadata = z.object({
  fleet: z.string().min(1),
  pool: z.string().min(1).max(64),
  state: z.literal("warm"),
  owner: z.string().min(1),
});
export const SandboxMetadata = z.union([SessionSandboxMetadata, PooledSandboxMetadata]);
export type SandboxMetadata = z.infer<typeof SandboxMetadata>;
export type SessionSandboxMetadata = z.infer<typeof SessionSandboxMetadata>;
export type PooledSandboxMetadata = z.infer<typeof PooledSandboxMetadata>;

/**
 * A session's sandbox is given a hard timeout this much past the session's deadline (created so, or
 * extended up to it), a backstop to the watchdog that ends the session at its deadline.
 */
export const SANDBOX_GRACE_MS = 60_000;

export interface SandboxCreateSpec {
  metadata: SandboxMetadata;
  /** Environment of every process started in the sandbox (on top of the provider's minimal one). */
  envs: Record<string, string>;
  /**
   * Hard limit: the provider ends the sandbox after this, whether or not the fleet is still there.
   * At most the provider's `maxTimeoutMs` is given (longer asks get that much); `setTimeout` extends it.
   */
  timeoutMs: number;
  /**
   * Endpoints (URLs) the sandbox's processes need: the model server or gateway, the fleet's callback
   * url. A provider that isolates networks lets these through and nothing else; the local provider
   * reaches only endpoints on the host's loopback, at the same port inside the sandbox.
   */
  egress?: readonly string[];
}

export interface SandboxFile {
  /** Relative to the workspace; the provider refuses anything that would land outside it. */
  path: string;
  content: Uint8Array | string;
}

export interface CommandSpec {
  command: string;
  args: string[];
  envs?: Record<string, string>;
  /** Relative to the workspace (default: the workspace). */
  cwd?: string;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Sandbox {
  readonly id: string;
  readonly provider: string;
  /** Absolute path of the workspace inside the sandbox (a git repository). */
  readonly workspace: string;
  /** Absolute path of the sandbox user's home (HOME; XDG folders live below it). */
  readonly home: string;
  /** The port an agent server should listen on inside the sandbox. */
  readonly agentPort: number;
  /** Writes files through the provider's file API (never a shell), relative to the workspace or the home. */
  writeFiles(files: readonly SandboxFile[], options?: { base?: "workspace" | "home" }): Promise<void>;
  /** Null when the file does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** Runs to completion (bounded) and returns its output. */
  run(command: CommandSpec, options?: { timeoutMs?: number }): Promise<CommandResult>;
  /** Starts a long-running process (the agent server); its output goes to the sandbox's log. */
  startBackground(command: CommandSpec): Promise<{ pid: number }>;
  /** Base URL (scheme, host, port) at which `port` inside the sandbox is reachable from the fleet. */
  url(port: number): string;
  isAlive(): Promise<boolean>;
  /** Ends the sandbox and everything in it. Idempotent. */
  kill(): Promise<void>;
}

export interface SandboxSummary {
  id: string;
  provider: string;
  metadata: Record<string, string>;
  startedAt: number;
  /** When the provider's hard timeout ends it. */
  endAt?: number;
}

export interface SandboxProvider {
  readonly name: string;
  /**
   * The longest hard timeout one create or setTimeout may ask for (E2B: an hour on its Hobby plan,
   * a day on Pro); undefined when the provider has none. A session that needs longer has its
   * sandbox's timeout extended while it runs.
   */
  readonly maxTimeoutMs?: number | undefined;
  create(spec: SandboxCreateSpec): Promise<Sandbox>;
  /**
   * Sets a running sandbox's hard timeout to `timeoutMs` from now (longer or shorter); false when it
   * is gone. Refused (a non-retryable error) past `maxTimeoutMs`, or where the provider cannot move
   * a timeout it enforces.
   */
  setTimeout(id: string, timeoutMs: number): Promise<boolean>;
  /** Re-attaches to a sandbox created earlier (by any process); null when it is gone. */
  connect(id: string): Promise<Sandbox | null>;
  /**
   * Sandboxes alive now whose metadata contains every given key/value, oldest first: by `startedAt`,
   * then by id for those started in the same millisecond (`oldestFirst`), so every caller and every
   * provider gives one order. Not creation order: two creates in one millisecond sort by id.
   */
  list(filter?: Partial<Record<string, string>>): Promise<SandboxSummary[]>;
  /** Ends a sandbox by id; true when it was alive. Idempotent. */
  kill(id: string): Promise<boolean>;
}
