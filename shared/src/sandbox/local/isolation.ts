import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { basename, delimiter, dirname, isAbsolute } from "node:path";
import { seccompSupported } from "./seccomp.js";

export type IsolationMode = "bubblewrap" | "none";

/** Inside every isolated sandbox, the folder holding its Unix-socket bridges to the host. */
export const BRIDGE_DIR_INSIDE = "/run/fleet";

/**
 * Everything but the mount namespace is new as well: a user namespace (the process is its own
 * unprivileged user, and may not make further ones), pid (when bubblewrap's outer process dies,
 * --die-with-parent takes the namespace's init down and the kernel ends every process inside, even
 * those that called setsid), ipc, uts, cgroup, and network: the sandbox has a loopback of its own
 * and nothing else, so neither the host's loopback (store, bus, api, other sandboxes) nor any other
 * network is reachable, and raw sockets see only its own traffic.
 */
const NAMESPACE_FLAGS = [
  "--unshare-user",
  "--disable-userns",
  "--unshare-ipc",
  "--unshare-pid",
  "--unshare-net",
  "--unshare-uts",
  "--unshare-cgroup-try",
  "--proc",
  "/proc",
  "--dev",
  "/dev",
  "--new-session",
  "--die-with-parent",
  "--cap-drop",
  "ALL",
];

/** The host tools isolation needs, found on the tool path. */
export interface IsolationTools {
  bwrap: string | undefined;
  setpriv: string | undefined;
  socat: string | undefined;
}

/**
 * The argv prefix that turns the fleet's root into the sandbox's own user before bubblewrap runs:
 * real, effective and saved ids, no supplementary groups, no inheritable capabilities and no new
 * privileges. bubblewrap then builds its namespaces unprivileged, as that user.
 */
export function dropToUser(setpriv: string, uid: number): string[] {
  return [setpriv, `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--"];
}

/**
 * Why bubblewrap isolation cannot work on this host, or undefined when it does. Installed is not
 * enough: user namespaces may be disabled, so the whole chain is run once (as a sandbox user, with
 * every namespace) and the answer remembered.
 */
const probed = new Map<string, string | undefined>();

export function isolationProblem(tools: IsolationTools, rootDir: string, probeUid: number): string | undefined {
  if (!tools.bwrap) return "bubblewrap is not installed (Debian package bubblewrap)";
  if (!tools.setpriv) return "setpriv is not installed (Debian package util-linux)";
  if (!tools.socat) return "socat is not installed (Debian package socat): sandboxes reach the fleet through it";
  if (!seccompSupported()) return `no seccomp filter for this architecture (${process.arch}): only x86_64 is supported`;
  if (process.getuid?.() !== 0) return "sandboxes run as users of their own, which needs the fleet to run as root";
  const blocked = untraversable(rootDir);
  if (blocked)
    return `sandbox users cannot reach ${rootDir}: ${blocked} is not searchable by others (chmod o+x, or choose another FLEET_SANDBOX_DIR)`;
  const key = `${tools.bwrap}\0${tools.setpriv}`;
  if (!probed.has(key)) {
    const r = spawnSync(
      tools.setpriv,
      [...dropToUser(tools.setpriv, probeUid).slice(1), tools.bwrap, "--ro-bind", "/", "/", ...NAMESPACE_FLAGS, "true"],
      {
        stdio: ["ignore", "ignore", "pipe"],
        timeout: 10_000,
        env: { PATH: "/usr/bin:/bin" },
      },
    );
    probed.set(
      key,
      r.status === 0
        ? undefined
        : `bubblewrap cannot create namespaces here: ${
            String(r.stderr ?? "")
              .trim()
              .slice(0, 300) || `exit ${r.status}`
          }`,
    );
  }
  return probed.get(key);
}

/** The first folder on the way to `dir` (itself included) that other users cannot search. */
export function untraversable(dir: string): string | undefined {
  for (let p = dir; ; p = dirname(p)) {
    try {
      if ((statSync(p).mode & 0o001) === 0) return p;
    } catch {
      return p;
    }
    if (p === dirname(p)) return undefined;
  }
}

/** What a sandbox sees of the host: system folders read-only, symlinked ones as the same links. */
export type HostView = Array<{ kind: "ro"; path: string } | { kind: "symlink"; target: string; path: string }>;

const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"];

/**
 * The host view for sandboxes: the system folders, the folders on the sandbox PATH and `readable`
 * (read-only), and nothing else: no home folders, no /srv, /var, /opt or /work, so neither the
 * fleet's data and secrets nor other users' files are there to read.
 */
export function hostView(path: string, readable: readonly string[] = []): HostView {
  const view: HostView = [];
  const covered = (p: string) => view.some((v) => p === v.path || p.startsWith(`${v.path}/`));
  for (const dir of SYSTEM_DIRS) {
    try {
      const st = lstatSync(dir);
      if (st.isSymbolicLink()) view.push({ kind: "symlink", target: readlinkSync(dir), path: dir });
      else if (st.isDirectory()) view.push({ kind: "ro", path: dir });
    } catch {
      // Not on this host.
    }
  }
  for (const dir of [...path.split(delimiter), ...readable]) {
    if (!isAbsolute(dir) || !existsSync(dir)) continue;
    const real = realpathSync(dir);
    if (!covered(dir) && !covered(real)) view.push({ kind: "ro", path: real });
  }
  return view;
}

export interface IsolatedCommand {
  tools: IsolationTools;
  view: HostView;
  rootDir: string;
  /** The sandbox's folders, writable at the same paths inside; `bridge` is mounted at BRIDGE_DIR_INSIDE. */
  binds: { workspace: string; home: string; tmp: string; bridge: string };
  uid: number;
  /** The descriptor number the seccomp filter is readable on in the child. */
  seccompFd: number;
  cwd: string;
  command: string;
  args: readonly string[];
  /** The program the command finally runs, when `command` wraps it (its folder is brought in). */
  program?: string;
}

/**
 * The argv that runs a command as the sandbox: its own user, every namespace new, no capabilities,
 * the seccomp filter, and a root that is empty but for the host view (read-only), a private /tmp
 * and this sandbox's workspace, home, tmp and bridge folder. Other sandboxes, the registry and
 * everything outside the view are not there. An absolute command outside the view brings its
 * folder, read-only (its package folder when it sits in a `bin` folder).
 */
export function isolatedArgv(c: IsolatedCommand): string[] {
  const { tools } = c;
  if (!tools.bwrap || !tools.setpriv) throw new Error("isolatedArgv needs bwrap and setpriv");
  const mount = (v: HostView[number]) =>
    v.kind === "ro" ? ["--ro-bind", v.path, v.path] : ["--symlink", v.target, v.path];
  // A folder of the view under /tmp (a checkout or a tool kept there) would vanish under the private
  // /tmp: it is mounted after it. Never /tmp itself, nor anything in the sandboxes' root.
  const underTmp = (p: string) => p.startsWith("/tmp/") && !p.startsWith(`${c.rootDir}/`);
  const mounts = c.view.filter((v) => !underTmp(v.path)).flatMap(mount);
  const tmpMounts = c.view.filter((v) => underTmp(v.path)).flatMap(mount);
  // Mounted after the tmpfs folders, so a command kept under /tmp stays visible.
  const own: string[] = [];
  const program = c.program ?? c.command;
  if (isAbsolute(program) && !c.view.some((v) => program.startsWith(`${v.path}/`))) {
    const dir = dirname(program);
    const pkg = basename(dir) === "bin" ? dirname(dir) : dir;
    own.push("--ro-bind", pkg, pkg);
  }
  const binds = [c.binds.workspace, c.binds.home, c.binds.tmp].flatMap((p) => ["--bind", p, p]);
  return [
    ...dropToUser(tools.setpriv, c.uid),
    tools.bwrap,
    ...mounts,
    ...["--tmpfs", "/tmp"],
    ...tmpMounts,
    // rootDir goes under a tmpfs too, after every folder of the view, in case one covers it: other
    // sandboxes must not show.
    ...["--tmpfs", c.rootDir],
    ...own,
    ...binds,
    ...["--bind", c.binds.bridge, BRIDGE_DIR_INSIDE],
    ...NAMESPACE_FLAGS,
    ...["--seccomp", String(c.seccompFd), "--chdir", c.cwd, "--", c.command, ...c.args],
  ];
}
