import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { COMMANDS } from "../cli/src/commands.js";

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

  it("the README's command table lists every command, and only those", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    // First cells of the table's rows: `./fleet infra up` / `down` names two commands.
    const cells = [...readme.matchAll(/^\| (`\.\/fleet [^|]*)\|/gm)].map((m) => m[1] as string);
    const named = cells.flatMap((cell) => {
      const parts = [...cell.matchAll(/`(?:\.\/fleet )?([^`]*)`/g)].map((m) =>
        (m[1] as string).split(" ").filter((w) => /^[a-z]+$/.test(w)),
      );
      const first = parts[0] ?? [];
      // A later part without its group word (`down` after `infra up`) belongs to the first part's group.
      return parts.map((words) =>
        first.length > 1 && words.length === 1 && words[0] !== first[0] ? [first[0] as string, ...words] : words,
      );
    });
    const isNamed = (name: string) => named.some((words) => words.slice(0, name.split(" ").length).join(" ") === name);
    for (const { name } of COMMANDS) expect(isNamed(name), `README lacks ./fleet ${name}`).toBe(true);
    const known = new Set(COMMANDS.map((c) => c.name.split(" ")[0]));
    for (const words of named)
      expect(known.has(words[0] as string), `README names ./fleet ${words.join(" ")}, which is no command`).toBe(true);
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

  it("starts a three-node NATS cluster with --cluster 3: every node in NATS_URL, the fleet's users and the sync interval on each", () => {
    const own = mkdtempSync(join(tmpdir(), "fleet-cli-cluster-"));
    const env = { FLEET_HOME: own, FLEET_NATS_SYNC_INTERVAL: "always" };
    try {
      expect(fleet(["infra", "up", "--cluster", "2"], env).err).toMatch(/--cluster takes a node count from 3 to 7/);
      const up = fleet(["infra", "up", "--cluster", "3"], env, 120_000);
      expect(up.code, up.err).toBe(0);
      expect(up.out).toContain("nats local (3-node cluster)");
      expect(up.out).toMatch(
        /NATS_URL=nats:\/\/127\.0\.0\.1:\d+,nats:\/\/127\.0\.0\.1:\d+,nats:\/\/127\.0\.0\.1:\d+$/m,
      );
      for (const node of ["fleet-n1", "fleet-n2", "fleet-n3"]) {
        const conf = readFileSync(join(own, "infra", "nats", node, "nats.conf"), "utf8");
        expect(conf).toContain(`server_name: "${node}"`);
        expect(conf).toContain("sync_interval: always");
        expect(conf).toMatch(/routes: \["nats-route:\/\/127\.0\.0\.1:\d+", "nats-route:\/\/127\.0\.0\.1:\d+"\]/);
        expect(conf).toContain('user: "fleet-outside"');
      }
      const status = fleet(["infra", "status"], env);
      expect(status.code, status.out).toBe(0);
      expect(status.out.match(/nats-fleet-n\d\s+pid \d+ alive/g)).toHaveLength(3);
      expect(fleet(["infra", "down"], env).out).toMatch(
        /stopped nats-fleet-n1 \(\d+\), nats-fleet-n2 \(\d+\), nats-fleet-n3 \(\d+\), ferretdb \(\d+\)/,
      );
    } finally {
      fleet(["infra", "down"], env);
      rmSync(own, { recursive: true, force: true });
    }
  }, 150_000);
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

describe("./fleet up, submit, logs, ls, show, down", () => {
  it("runs a session on a fleet whose nats-server gives each service only its own subjects", () => {
    const own = mkdtempSync(join(tmpdir(), "fleet-cli-up-"));
    const env = { FLEET_HOME: own };
    try {
      const up = fleet(["up"], env, 120_000);
      expect(up.code, up.err).toBe(0);
      expect(up.out).toContain("NATS user for outside systems: fleet-outside");
      const submitted = fleet(["submit", "-f", "--project", "cli", "write a greeting"], env, 120_000);
      expect(submitted.code, submitted.err).toBe(0);
      expect(submitted.out).toContain("✓ Write hello.txt");
      const id = /^(ses-\S+) pending/m.exec(submitted.out)?.[1] as string;
      expect(submitted.out).toContain(`session ${id} completed`);
      expect(fleet(["ls", "--project", "cli"], env).out).toContain(id);
      const shown = fleet(["show", id], env);
      expect(shown.out).toContain("Done. hello.txt now says");
      expect(shown.out).toMatch(/serverStart\s+[\d.]+ s/);
      expect(fleet(["logs", id], env).out).toContain("✓ Bash cat hello.txt");
      expect(up.out).toMatch(/development API key \(all projects; also in .*\): fk_[a-f0-9]{16}_/);
      const made = fleet(["keys", "create", "--project", "cli", "--label", "ci"], env);
      const keyId = /^key ([a-f0-9]{16}) for cli/m.exec(made.out)?.[1] as string;
      expect(keyId).toBeDefined();
      expect(fleet(["keys", "ls"], env).out).toMatch(new RegExp(`${keyId}  active .* cli  ci`));
      expect(fleet(["keys", "revoke", keyId], env).out).toContain(`revoked ${keyId}`);
      expect(fleet(["keys", "ls"], env).out).toMatch(new RegExp(`${keyId}  revoked`));
      // The server requires users (up would have failed otherwise); the outside role is handed out.
      const env2 = fleet(["infra", "env"], env).out;
      expect(env2).toContain("NATS_USER='fleet-outside'");
    } finally {
      const down = fleet(["down"], env, 60_000);
      expect(down.out).toMatch(/stopped .*api.*spawner.*poller.*watchdog/);
      rmSync(own, { recursive: true, force: true });
    }
  }, 240_000);
});
