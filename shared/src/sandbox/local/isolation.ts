import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, delimiter, dirname, isAbsolute } from "node:path";
import { FleetError } from "../../errors/index.js";
import type { SandboxLayout } from "./registry.js";

export type IsolationMode = "bubblewrap" | "none";

/**
 * No network namespace: the agent must reach a model server on the host's loopback and be reached
 * on its port. The pid namespace matters for cleanup as much as for isolation: when bubblewrap's
 * outer process dies (killed with its group, or by `timeout`), --die-with-parent takes the
 * namespace's init down and the kernel ends every process inside, even those that called setsid.
 */
const NAMESPACE_FLAGS = ["--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--new-session", "--die-with-parent"];

const probed = new Map<string, boolean>();

/** Installed is not enough: user namespaces may be disabled, so run it once and remember. */
export function bubblewrapWorks(bin: string): boolean {
  let ok = probed.get(bin);
  if (ok === undefined) {
    const r = spawnSync(bin, ["--ro-bind", "/", "/", ...NAMESPACE_FLAGS, "true"], {
      stdio: "ignore",
      timeout: 10_000,
      env: { PATH: "/usr/bin:/bin" },
    });
    ok = r.status === 0;
    probed.set(bin, ok);
  }
  return ok;
}

export function chooseIsolation(requested: "auto" | "bubblewrap" | "none", bwrapBin: string | undefined): IsolationMode {
  if (requested === "none") return "none";
  const works = bwrapBin !== undefined && bubblewrapWorks(bwrapBin);
  if (requested === "bubblewrap" && !works) {
    throw new FleetError(
      "config",
      bwrapBin ? `bubblewrap (${bwrapBin}) does not work on this host` : "isolation 'bubblewrap' requested but bwrap is not installed (Debian package bubblewrap)",
      { retryable: false },
    );
  }
  return works ? "bubblewrap" : "none";
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

/**
 * The argv that runs a command as the sandbox. Under bubblewrap the root is empty but for the host
 * view (read-only), a private /tmp and this sandbox's workspace, home and tmp (writable, at the
 * same paths). Other sandboxes, the registry and everything outside the view are not there. An
 * absolute command outside the view brings its folder, read-only (its package folder when it sits
 * in a `bin` folder).
 */
export function isolatedArgv(
  mode: IsolationMode,
  bwrapBin: string | undefined,
  view: HostView,
  rootDir: string,
  layout: SandboxLayout,
  cwd: string,
  command: string,
  args: readonly string[],
): string[] {
  if (mode === "none" || !bwrapBin) return [command, ...args];
  const mounts = view.flatMap((v) => (v.kind === "ro" ? ["--ro-bind", v.path, v.path] : ["--symlink", v.target, v.path]));
  // Mounted after the tmpfs folders, so a command kept under /tmp stays visible.
  const own: string[] = [];
  if (isAbsolute(command) && !view.some((v) => command.startsWith(`${v.path}/`))) {
    const dir = dirname(command);
    const pkg = basename(dir) === "bin" ? dirname(dir) : dir;
    own.push("--ro-bind", pkg, pkg);
  }
  const binds = [layout.workspace, layout.home, layout.tmp].flatMap((p) => ["--bind", p, p]);
  // rootDir goes under a tmpfs too, in case the view covers it: other sandboxes must not show.
  return [bwrapBin, ...mounts, "--tmpfs", "/tmp", "--tmpfs", rootDir, ...own, ...binds, ...NAMESPACE_FLAGS, "--chdir", cwd, "--", command, ...args];
}
