import { spawnSync } from "node:child_process";
import type { CliContext } from "./infra.js";

export interface DebianPackage {
  name: string;
  probe: readonly string[];
  /** What does not work without it. */
  without: string;
}

/** What isolated local sandboxes need (util-linux, which has setpriv, is essential on Debian). */
export const SANDBOX_PACKAGES: readonly DebianPackage[] = [
  {
    name: "bubblewrap",
    probe: ["bwrap", "--version"],
    without: "local sandboxes cannot be isolated, so the fleet refuses to start agents",
  },
  {
    name: "socat",
    probe: ["socat", "-V"],
    without: "isolated local sandboxes have no way to the fleet, so the fleet refuses to start agents",
  },
];

/** What only the test suite needs. */
export const SUITE_PACKAGES: readonly DebianPackage[] = [
  {
    name: "redis-server",
    probe: ["redis-server", "--version"],
    without: "test/bench-peer.test.ts (the BullMQ peer) fails",
  },
  {
    name: "chromium",
    probe: ["chromium", "--version"],
    without: "test/dashboard.test.ts (the dashboard in a real browser) fails",
  },
];

/**
 * Installs the missing packages once, as root with apt; otherwise says what is missing and what
 * that means. Local sandboxes without bubblewrap and socat run only with FLEET_SANDBOX_ISOLATION=none.
 */
export function ensureDebianPackages(ctx: CliContext, packages: readonly DebianPackage[]): void {
  const has = (probe: readonly string[]): boolean =>
    spawnSync(probe[0] as string, probe.slice(1), { stdio: "ignore" }).status === 0;
  const missing = packages.filter((p) => !has(p.probe));
  if (missing.length === 0) return;
  const canApt = process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (!canApt) {
    for (const p of missing) ctx.out(`${p.name} not found (Debian package ${p.name}): ${p.without}`);
    return;
  }
  const names = missing.map((p) => p.name);
  ctx.out(`installing ${names.join(", ")} (apt-get)`);
  const quiet = { stdio: "ignore" as const, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } };
  if (spawnSync("apt-get", ["install", "-y", "-q", ...names], quiet).status !== 0) {
    spawnSync("apt-get", ["update", "-q"], quiet);
    spawnSync("apt-get", ["install", "-y", "-q", ...names], quiet);
  }
  for (const p of missing) if (!has(p.probe)) ctx.out(`could not install ${p.name}: ${p.without}`);
}
