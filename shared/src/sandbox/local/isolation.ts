import { spawnSync } from "node:child_process";
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

/**
 * The argv that runs a command as the sandbox. Under bubblewrap the whole filesystem is read-only,
 * rootDir is covered by an empty tmpfs (other sandboxes' folders, registry and secrets vanish) and
 * only this sandbox's workspace, home and tmp come back, writable, at the same paths.
 */
export function isolatedArgv(
  mode: IsolationMode,
  bwrapBin: string | undefined,
  rootDir: string,
  layout: SandboxLayout,
  cwd: string,
  command: string,
  args: readonly string[],
): string[] {
  if (mode === "none" || !bwrapBin) return [command, ...args];
  const binds = [layout.workspace, layout.home, layout.tmp].flatMap((p) => ["--bind", p, p]);
  return [bwrapBin, "--ro-bind", "/", "/", "--tmpfs", rootDir, ...binds, ...NAMESPACE_FLAGS, "--chdir", cwd, "--", command, ...args];
}
