import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const home = mkdtempSync(join(tmpdir(), "fleet-cli-test-"));

function fleet(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [join(root, "cli", "dist", "main.js"), ...args], {
    env: { ...process.env, FLEET_HOME: home, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("./fleet command line", () => {
  it("prints usage for help and refuses unknown commands with exit 2", () => {
    expect(fleet(["help"])).toMatchObject({ code: 0 });
    expect(fleet(["help"]).out).toContain("infra up");
    const bad = fleet(["launch"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown command 'launch'");
  });

  it("exits 1 naming the bad variable when the environment is invalid", () => {
    const r = fleet(["infra", "status"], { MONGODB_URI: "postgres://nope" });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/MONGODB_URI/);
  });

  it("brings the infrastructure up, reports it, and takes it down", () => {
    expect(fleet(["infra", "status"]).code).toBe(1);
    const up = fleet(["infra", "up"]);
    expect(up.code).toBe(0);
    expect(up.out).toMatch(/NATS_URL=nats:\/\/127\.0\.0\.1:\d+/);
    const status = fleet(["infra", "status"]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/nats\s+ready/);
    expect(status.out).toMatch(/store\s+ready/);
    expect(fleet(["infra", "env"]).out).toMatch(/^export NATS_URL='nats:/m);
    expect(fleet(["infra", "up"]).out).toContain("already running");
    expect(fleet(["infra", "down"]).out).toMatch(/stopped nats-server \(\d+\), ferretdb \(\d+\)/);
    expect(fleet(["infra", "status"]).code).toBe(1);
  });
});
