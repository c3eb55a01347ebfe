import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

/** The same, without blocking: many of them can run at once. */
async function fleetAsync(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const run = promisify(execFile);
  return run(process.execPath, [join(root, "cli", "dist", "main.js"), ...args], {
    env: { ...process.env, FLEET_HOME: home },
    encoding: "utf8",
    timeout: 60_000,
  }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: e.code ?? -1,
      out: e.stdout ?? "",
      err: e.stderr ?? "",
    }),
  );
}

afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("./fleet command line", () => {
  it("prints usage for help and refuses unknown commands with exit 2", () => {
    expect(fleet(["help"])).toMatchObject({ code: 0 });
    expect(fleet(["help"]).out).toContain("./fleet infra");
    const bad = fleet(["launch"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown command 'launch'");
  });

  it("answers --help on every command and subcommand with what it does; wrong usage is one line and exit 2", async () => {
    // `completion --help` prints the script itself: its test is the next one.
    const named = COMMANDS.filter((c) => c.name !== "completion");
    const helps = await Promise.all(named.map(({ name }) => fleetAsync([...name.split(" "), "--help"])));
    named.forEach(({ name, about }, i) => {
      expect(helps[i], name).toMatchObject({ code: 0, err: "" });
      expect(helps[i]?.out, name).toContain(about);
    });
    for (const [args, says] of [
      [["submit"], /not enough non-option arguments/i],
      [["submit", "  "], /a prompt is required/],
      [["ls", "--bogus"], /unknown argument: bogus/i],
      [["keys", "create"], /missing required argument: project/i],
      [["infra"], /name an infra command/],
      [["ls", "--limit", "many"], /limit/],
    ] as const) {
      const r = await fleetAsync([...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toMatch(says);
      expect(r.err.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
    // Nothing to talk to: exit 3, the fix on the same line, no stack trace.
    const r = fleet(["show", "s-1"]);
    expect(r).toMatchObject({ code: 3, out: "" });
    expect(r.err).toBe("fleet: no api to talk to: start the fleet with ./fleet up, or set FLEET_API_URL\n");
  });

  it("prints a completion script that completes commands, subcommands and options", () => {
    const script = fleet(["completion"]);
    expect(script.code).toBe(0);
    // The script asks `./fleet` (the project's wrapper, which may install and build first); here a
    // `./fleet` of a folder of the test's own runs the built CLI alone, so nothing is reinstalled
    // under the suite's feet.
    const shimDir = mkdtempSync(join(tmpdir(), "fleet-completion-"));
    writeFileSync(
      join(shimDir, "fleet"),
      `#!/bin/sh\nexec "${process.execPath}" "${join(root, "cli", "dist", "main.js")}" "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const complete = (...words: string[]) => {
      const r = spawnSync(
        "bash",
        [
          "-c",
          `eval "$(cat)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _fleet_yargs_completions; echo "\${COMPREPLY[@]}"`,
        ],
        { cwd: shimDir, input: script.out, encoding: "utf8", env: { ...process.env, FLEET_HOME: home } },
      );
      return r.stdout.trim().split(" ");
    };
    expect(complete("./fleet", "su")).toEqual(["submit"]);
    expect(complete("./fleet", "infra", "st")).toEqual(["status"]);
    expect(complete("./fleet", "submit", "--pro")).toEqual(["--project"]);
    rmSync(shimDir, { recursive: true, force: true });
  }, 120_000);

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
      // Every read command also speaks JSON, for scripts.
      const listed = JSON.parse(fleet(["ls", "--project", "cli", "--json"], env).out) as {
        items: Array<{ id: string }>;
      };
      expect(listed.items.map((s) => s.id)).toContain(id);
      const asJson = JSON.parse(fleet(["show", id, "--json"], env).out) as {
        session: { status: string };
        metrics: { counts: { toolCalls: number } };
      };
      expect(asJson.session.status).toBe("completed");
      expect(asJson.metrics.counts.toolCalls).toBeGreaterThan(0);
      const lines = JSON.parse(fleet(["logs", id, "--json"], env).out) as Array<{ seq: number }>;
      expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
      expect(JSON.parse(fleet(["infra", "status", "--json"], env).out)).toMatchObject({
        running: true,
        nats: { ready: true },
        store: { ready: true },
      });
      // A refusal of the api: its status and code, and the fix, on one line; exit 1.
      const missing = fleet(["show", "no-such-session"], env);
      expect(missing.code).toBe(1);
      expect(missing.err).toMatch(
        /^fleet: 404 not_found: .*\(check the id: \.\/fleet ls --project P lists a project's sessions\)\n$/,
      );
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
      const keys = JSON.parse(fleet(["keys", "ls", "--json"], env).out) as Array<Record<string, unknown>>;
      expect(keys.find((k) => k.id === keyId)).toMatchObject({ projects: ["cli"], label: "ci" });
      expect(JSON.stringify(keys)).not.toMatch(/hash|fk_/);
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
