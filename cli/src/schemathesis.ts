import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";

/** The API fuzzer the suite runs against /openapi.json (test/schemathesis.test.ts), from PyPI. */
export const SCHEMATHESIS_VERSION = "4.32.5";

/** Where `./fleet test` installs it: a virtualenv, or a `pip --target` folder when venv is missing. */
export function schemathesisPaths(toolsDir: string): { venv: string; target: string } {
  return { venv: join(toolsDir, "venv"), target: join(toolsDir, "pylib") };
}

export interface SchemathesisCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** How to start the installed schemathesis CLI, or undefined when it is not installed at the pinned version. */
export function schemathesisCommand(toolsDir: string): SchemathesisCommand | undefined {
  const { venv, target } = schemathesisPaths(toolsDir);
  const candidates: Array<SchemathesisCommand & { installed: string }> = [
    { command: join(venv, "bin", "schemathesis"), args: [], env: {}, installed: join(venv, "bin", "schemathesis") },
    // Run as a module with the folder on PYTHONPATH: pip --target puts the entry script elsewhere.
    {
      command: "python3",
      args: ["-m", "schemathesis.cli"],
      env: { PYTHONPATH: target },
      installed: join(target, "schemathesis"),
    },
  ];
  for (const { installed, ...c } of candidates) {
    if (!existsSync(installed)) continue;
    const r = spawnSync(c.command, [...c.args, "--version"], {
      encoding: "utf8",
      env: { ...process.env, ...c.env },
      timeout: 60_000,
    });
    if (r.status === 0 && r.stdout.includes(SCHEMATHESIS_VERSION)) return c;
  }
  return undefined;
}

/**
 * Installs the pinned schemathesis into <tools>/venv (python3 -m venv + pip), once. Where venv is
 * missing (Debian's python3-venv), installs that with apt-get as root, else falls back to
 * `pip install --target <tools>/pylib`. Returns false (having said why) when neither works.
 */
export function ensureSchemathesis(toolsDir: string, out: (line: string) => void): boolean {
  if (schemathesisCommand(toolsDir)) return true;
  const { venv, target } = schemathesisPaths(toolsDir);
  const spec = `schemathesis==${SCHEMATHESIS_VERSION}`;
  const quietPip = ["--disable-pip-version-check", "--no-input", "-q"];
  out(`installing ${spec} from PyPI into ${venv} (first run only)`);
  mkdirSync(toolsDir, { recursive: true });
  const run = (command: string, args: string[], env: Record<string, string> = {}): { ok: boolean; stderr: string } => {
    const r = spawnSync(command, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 15 * 60_000 });
    return { ok: r.status === 0, stderr: `${r.stderr ?? ""}${r.error ? String(r.error) : ""}`.trim() };
  };
  const makeVenv = (): boolean => {
    rmSync(venv, { recursive: true, force: true });
    return run("python3", ["-m", "venv", venv]).ok;
  };
  let venvOk = makeVenv();
  if (!venvOk && process.getuid?.() === 0 && run("apt-get", ["--version"]).ok) {
    out("python3 -m venv failed: installing python3-venv (apt-get)");
    const apt = { DEBIAN_FRONTEND: "noninteractive" };
    if (!run("apt-get", ["install", "-y", "-q", "python3-venv"], apt).ok) {
      run("apt-get", ["update", "-q"], apt);
      run("apt-get", ["install", "-y", "-q", "python3-venv"], apt);
    }
    venvOk = makeVenv();
  }
  if (venvOk) {
    const pip = run(join(venv, "bin", "python"), ["-m", "pip", "install", ...quietPip, spec]);
    if (pip.ok && schemathesisCommand(toolsDir)) return true;
    out(`pip install ${spec} into ${venv} failed: ${pip.stderr.slice(-1_500)}`);
  } else {
    out(`python3 -m venv is unavailable: installing ${spec} with pip --target ${target}`);
  }
  rmSync(venv, { recursive: true, force: true });
  // Into a staging folder renamed at the end, so an interrupted install is never taken for a complete one.
  const staging = `${target}.partial`;
  rmSync(staging, { recursive: true, force: true });
  const pip = run("python3", ["-m", "pip", "install", ...quietPip, "--target", staging, spec]);
  if (pip.ok) {
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
    if (schemathesisCommand(toolsDir)) return true;
  }
  rmSync(staging, { recursive: true, force: true });
  out(`could not install ${spec} (needs python3 >= 3.9 with pip and access to PyPI): ${pip.stderr.slice(-1_500)}`);
  return false;
}
