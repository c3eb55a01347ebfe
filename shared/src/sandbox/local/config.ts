import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import { FleetError } from "../../errors/index.js";
import { hostView, untraversable, type HostView, type IsolationTools } from "./isolation.js";

const Port = z.number().int().min(1024).max(65535);

export const LocalSandboxConfig = z.object({
  /** Shared by every fleet process on the host: the registry lives here. */
  rootDir: z.string().min(1),
  /** Agent ports come from here. Keep it outside the ephemeral range: OpenCode exits when its port is taken. */
  portRange: z
    .tuple([Port, Port])
    .refine(([lo, hi]) => lo <= hi, "portRange must be [low, high]")
    .default([20000, 29999]),
  /**
   * "bubblewrap": every sandbox is its own user in its own namespaces under a seccomp filter (see
   * isolation.ts); where that cannot work, creating a sandbox fails saying why. "none": agents run
   * as the fleet's own user on the host, for development only, and every creation says so loudly.
   */
  isolation: z.enum(["bubblewrap", "none"]).default("bubblewrap"),
  /** Sandbox users come from here: uids no account on the host uses. */
  uidRange: z
    .tuple([z.number().int().min(1000), z.number().int().max(4_000_000_000)])
    .refine(([lo, hi]) => lo <= hi, "uidRange must be [low, high]")
    .default([3_000_000, 3_999_999]),
  /** When set, this instance only lists (and so only reaps) sandboxes labelled with this fleet. */
  fleet: z.string().min(1).optional(),
  /** PATH inside sandboxes. Default: the system directories plus the directory of the running node. */
  path: z.string().min(1).optional(),
  lang: z.string().min(1).default("C.UTF-8"),
  /** Host folders sandboxes may read under bubblewrap, besides the system ones and those on PATH. */
  readable: z.array(z.string().min(1)).default([]),
  /**
   * Symbolic links every isolated sandbox's root gets (a path inside, and where it points), for
   * tooling that needs fixed paths inside every sandbox (the local E2B's /home/user).
   */
  links: z.array(z.object({ path: z.string().startsWith("/"), target: z.string().min(1) })).default([]),
  /** Grace between SIGTERM and SIGKILL when a sandbox is killed. */
  killGraceMs: z.number().int().min(0).max(60_000).default(2_000),
  /** Per stream cap on what run() captures; the rest is dropped and flagged. */
  maxOutputBytes: z
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  /** Refuse (retryably) to create more than this many live sandboxes in rootDir. */
  maxSandboxes: z.number().int().min(1).optional(),
});
export type LocalSandboxConfig = z.input<typeof LocalSandboxConfig>;

export interface ResolvedLocalConfig extends Omit<z.output<typeof LocalSandboxConfig>, "path"> {
  path: string;
  timeoutBin: string;
  gitBin: string;
  /** Host tools of bubblewrap isolation (undefined when not installed). */
  tools: IsolationTools;
  /** What a sandbox sees of the host under bubblewrap. */
  view: HostView;
}

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function findBinary(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Validates the config slice and resolves what every sandbox needs from the host once: the real
 * root folder (bubblewrap mounts by path, so symlinks must be gone) and absolute tool paths.
 */
export function resolveLocalConfig(input: LocalSandboxConfig): ResolvedLocalConfig {
  const parsed = LocalSandboxConfig.safeParse(input);
  if (!parsed.success) {
    throw new FleetError("config", `local sandbox provider: ${z.prettifyError(parsed.error)}`, { retryable: false });
  }
  const cfg = parsed.data;
  const path = cfg.path ?? [...new Set([dirname(process.execPath), ...SYSTEM_PATH.split(delimiter)])].join(delimiter);
  const toolPath = `${path}${delimiter}${SYSTEM_PATH}`;
  const timeoutBin = findBinary("timeout", toolPath);
  const gitBin = findBinary("git", toolPath);
  if (!timeoutBin)
    throw new FleetError("config", "local sandbox provider needs coreutils `timeout` on PATH", { retryable: false });
  if (!gitBin) throw new FleetError("config", "local sandbox provider needs `git` on PATH", { retryable: false });
  let rootDir: string;
  try {
    // Searchable (not listable) by others: a sandbox's user must reach its own folders below it.
    mkdirSync(resolve(cfg.rootDir), { recursive: true, mode: 0o711 });
    rootDir = realpathSync(resolve(cfg.rootDir));
  } catch (err) {
    throw new FleetError("config", `local sandbox provider: cannot use rootDir ${cfg.rootDir}`, {
      retryable: false,
      cause: err,
    });
  }
  // A tmpfs over rootDir hides it from sandboxes: over "/" that would hide everything.
  if (rootDir === "/")
    throw new FleetError("config", "local sandbox provider: rootDir must not be /", { retryable: false });
  const readable = cfg.readable.map((p) => resolve(p));
  const tools = {
    bwrap: findBinary("bwrap", toolPath),
    setpriv: findBinary("setpriv", toolPath),
    socat: findBinary("socat", toolPath),
  };
  const links = cfg.links.map((l) => ({ kind: "symlink" as const, target: l.target, path: l.path }));
  return { ...cfg, readable, rootDir, path, timeoutBin, gitBin, tools, view: [...hostView(path, readable), ...links] };
}

/** The kernel's ephemeral port range, when readable: outgoing connections take ports from it. */
export function ephemeralPortRange(): [number, number] | undefined {
  try {
    const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8"));
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where sandboxes of a fleet whose data lives in a private folder can go: `preferred` when every
 * folder above it is searchable by others (a sandbox's own user must reach its folders), else a
 * folder of the same name's hash under the system's temporary folder.
 */
export function reachableSandboxRoot(preferred: string): string {
  // Folders still to be made are made searchable; only existing ones can stand in the way.
  let existing = dirname(resolve(preferred));
  while (!existsSync(existing)) existing = dirname(existing);
  if (untraversable(existing) === undefined) return preferred;
  return join(
    tmpdir(),
    `fleet-sandboxes-${createHash("sha256").update(resolve(preferred)).digest("hex").slice(0, 12)}`,
  );
}
