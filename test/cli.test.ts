import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";

const root = join(import.meta.dirname, "..");
const home = mkdtempSync(join(tmpdir(), "fleet-cli-test-"));

function fleet(args: string[], env: NodeJS.ProcessEnv = {}, timeout = 60_000) {
  const r = spawnSync(process.execPath, [join(root, "cli", "dist", "main.js"), ...args], {
    env: { ...process.env, FLEET_HOME: home, ...env },
    encoding: "utf8",
    timeout,
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

describe("./fleet demo", () => {
  it("runs one session end to end on the embedded defaults and stops what it started", () => {
    // The run's servers stand in for the ones demo would start, as NATS_URL / MONGODB_URI allow.
    const r = fleet(["demo"], { NATS_URL: inject("natsUrl"), MONGODB_URI: inject("mongoUri") }, 180_000);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/session completed in [\d.]+ s end to end/);
    expect(r.out).toContain("✓ Write hello.txt");
    expect(r.out).toContain("Done. hello.txt now says: Hello from the session fleet!");
    expect(r.out).toMatch(/serverStart\s+[\d.]+ s/);
    expect(r.out).toContain("hello.txt (+1 -0)");
  }, 200_000);
});
