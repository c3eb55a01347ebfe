import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { FleetError } from "../../shared/src/errors/index.js";
import type { Sandbox, SessionSandboxMetadata, SandboxProvider } from "../../shared/src/sandbox/index.js";

/**
 * The one suite every SandboxProvider adapter must pass (run per adapter, like BullMQ's adapter
 * suite). Capabilities a provider cannot offer from this host (seeing its processes, crashing a
 * creator process) are optional hooks; everything else is the port's contract.
 */
export interface SandboxConformanceHarness {
  /** A new provider instance over the same backing store each call (a "second fleet process"). */
  makeProvider(): SandboxProvider;
  /** Environment variables the provider itself may set inside every sandbox. */
  baseEnv: readonly string[];
  /** Where the test's HTTP server should listen inside the sandbox. */
  listenHost?: string;
  /** Host-side view of a sandbox process (local providers): true while the pid runs. */
  processRunning?(pid: number): boolean;
  /** In a separate OS process: create a sandbox with this metadata, start `sleep 60`, report, then be SIGKILLed. */
  crashCreator?(metadata: SessionSandboxMetadata): Promise<{ sandboxId: string; pid: number }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function answers(url: string): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    // A sandbox proxy (E2B's) answers for the sandbox with 502 when nothing listens on the port.
    const text = await res.text();
    return res.status === 502 ? null : text;
  } catch {
    return null;
  }
}

async function rejection(p: Promise<unknown>): Promise<FleetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to be refused").toBeInstanceOf(FleetError);
  return err as FleetError;
}

export function describeSandboxProviderConformance(name: string, harness: SandboxConformanceHarness): void {
  describe(`SandboxProvider conformance: ${name}`, () => {
    const provider = harness.makeProvider();
    const fleet = `conf${randomBytes(3).toString("hex")}`;
    const created: string[] = [];
    const meta = (): SessionSandboxMetadata => ({
      fleet,
      sessionId: `s-${randomBytes(4).toString("hex")}`,
      projectId: "p1",
      attempt: "1",
    });

    async function create(
      timeoutMs = 60_000,
      envs: Record<string, string> = {},
    ): Promise<{ sandbox: Sandbox; metadata: SessionSandboxMetadata }> {
      const metadata = meta();
      const sandbox = await provider.create({ metadata, envs, timeoutMs });
      created.push(sandbox.id);
      return { sandbox, metadata };
    }

    /** A node HTTP server on the agent port, started the way the agent server is. */
    async function startServer(sandbox: Sandbox): Promise<number> {
      const host = harness.listenHost ?? "127.0.0.1";
      const script = `require("http").createServer((q, r) => r.end("pong:" + process.env.MARK)).listen(${sandbox.agentPort}, ${JSON.stringify(host)})`;
      const { pid } = await sandbox.startBackground({ command: "node", args: ["-e", script], envs: { MARK: "m1" } });
      await until(async () => (await answers(sandbox.url(sandbox.agentPort))) !== null, 15_000, "the server to answer");
      return pid;
    }

    afterAll(async () => {
      const cleanup = harness.makeProvider();
      for (const id of created) await cleanup.kill(id).catch(() => undefined);
    });

    it("lists a new sandbox by its metadata, and not under a filter that does not match", async () => {
      const { sandbox, metadata } = await create();
      expect(sandbox.provider).toBe(provider.name);
      expect(await sandbox.isAlive()).toBe(true);
      const found = await provider.list({ fleet, sessionId: metadata.sessionId });
      expect(found.map((s) => s.id)).toEqual([sandbox.id]);
      expect(found[0]?.metadata).toMatchObject(metadata);
      expect(found[0]?.provider).toBe(provider.name);
      expect(typeof found[0]?.startedAt).toBe("number");
      expect((await provider.list({ fleet })).map((s) => s.id)).toContain(sandbox.id);
      expect(await provider.list({ fleet, sessionId: "no-such-session" })).toEqual([]);
      expect(await provider.list({ sessionId: metadata.sessionId, projectId: "other" })).toEqual([]);
    });

    it("round-trips text and binary files, creating nested folders, in the workspace and the home", async () => {
      const { sandbox } = await create();
      const bytes = new Uint8Array(512).map((_, i) => (i * 7) % 256);
      await sandbox.writeFiles([
        { path: "hello.txt", content: "héllo wörld\n" },
        { path: "deep/er/still/data.bin", content: bytes },
      ]);
      expect(new TextDecoder().decode((await sandbox.readFile("hello.txt")) ?? undefined)).toBe("héllo wörld\n");
      expect(await sandbox.readFile("deep/er/still/data.bin")).toEqual(bytes);
      expect(await sandbox.readFile("missing.txt")).toBeNull();
      await sandbox.writeFiles([{ path: ".config/fleet/x.json", content: "{}" }], { base: "home" });
      const r = await sandbox.run({ command: "cat", args: [`${sandbox.home}/.config/fleet/x.json`] });
      expect(r.stdout).toBe("{}");
    });

    it("refuses paths that escape the workspace, writing nothing outside", async () => {
      const { sandbox } = await create();
      const outside = `${sandbox.home}/outside`;
      const setup = await sandbox.run({
        command: "sh",
        args: [
          "-c",
          'mkdir -p "$1" && printf original > "$1/target.txt" && ln -s "$1" link && ln -s "$1/target.txt" filelink && ln -s "$1/new.txt" dangling',
          "sh",
          outside,
        ],
      });
      expect(setup.exitCode).toBe(0);
      for (const path of [
        "../x",
        "/etc/passwd",
        "a/../../x",
        "..",
        "",
        "a\0b",
        "link/pwned.txt",
        "link/new/dir/pwned.txt",
        "filelink",
        "dangling",
      ]) {
        const err = await rejection(sandbox.writeFiles([{ path, content: "pwned" }]));
        expect(err.retryable, `writing ${JSON.stringify(path)}`).toBe(false);
      }
      for (const path of ["../x", "/etc/passwd", "link/target.txt", "filelink"]) {
        expect((await rejection(sandbox.readFile(path))).retryable).toBe(false);
      }
      // A batch with one bad path writes nothing at all.
      await rejection(
        sandbox.writeFiles([
          { path: "fine.txt", content: "x" },
          { path: "../bad", content: "x" },
        ]),
      );
      expect(await sandbox.readFile("fine.txt")).toBeNull();
      const after = await sandbox.run({
        command: "sh",
        args: ["-c", 'ls -A "$1"; cat "$1/target.txt"', "sh", outside],
      });
      expect(after.stdout).toBe("target.txt\noriginal");
    });

    it("run() returns output and exit code, passing arguments literally", async () => {
      const { sandbox } = await create();
      const r = await sandbox.run({ command: "sh", args: ["-c", "echo out; echo err >&2; exit 7"] });
      expect(r).toEqual({ exitCode: 7, stdout: "out\n", stderr: "err\n" });
      const args = ["a b", "it's", "$(id)", "`id`", "line\nbreak", "*"];
      const p = await sandbox.run({ command: "printf", args: ["%s|", ...args] });
      expect(p.stdout).toBe(`${args.join("|")}|`);
      const pwd = await sandbox.run({ command: "pwd", args: [] });
      expect(pwd.stdout.trim()).toBe(sandbox.workspace);
      const git = await sandbox.run({ command: "git", args: ["log", "--format=%s"] });
      expect([git.exitCode, git.stdout.trim()]).toEqual([0, "Initial empty commit"]);
      await sandbox.writeFiles([{ path: "sub/dir/.keep", content: "" }]);
      expect((await sandbox.run({ command: "pwd", args: [], cwd: "sub/dir" })).stdout.trim()).toBe(
        `${sandbox.workspace}/sub/dir`,
      );
      expect((await rejection(sandbox.run({ command: "pwd", args: [], cwd: "../.." }))).retryable).toBe(false);
    });

    it("a background server becomes reachable at url(agentPort)", async () => {
      const { sandbox } = await create();
      await startServer(sandbox);
      expect(await answers(sandbox.url(sandbox.agentPort))).toBe("pong:m1");
      expect(await sandbox.isAlive()).toBe(true);
    });

    it("a second provider instance connects by id, sees the sandbox and can kill it", async () => {
      const { sandbox, metadata } = await create();
      await sandbox.writeFiles([{ path: "marker.txt", content: "from the first" }]);
      const pid = await startServer(sandbox);
      const other = harness.makeProvider();
      const again = await other.connect(sandbox.id);
      expect(again).not.toBeNull();
      expect([again?.id, again?.workspace, again?.agentPort]).toEqual([
        sandbox.id,
        sandbox.workspace,
        sandbox.agentPort,
      ]);
      expect(new TextDecoder().decode((await again?.readFile("marker.txt")) ?? undefined)).toBe("from the first");
      expect(await again?.isAlive()).toBe(true);
      expect((await other.list({ sessionId: metadata.sessionId })).map((s) => s.id)).toEqual([sandbox.id]);
      await again?.kill();
      expect(await answers(sandbox.url(sandbox.agentPort))).toBeNull();
      if (harness.processRunning) expect(harness.processRunning(pid)).toBe(false);
      expect(await sandbox.isAlive()).toBe(false);
      expect(await provider.connect(sandbox.id)).toBeNull();
      expect(await other.connect("no-such-sandbox")).toBeNull();
    });

    it("setTimeout: true for a live sandbox, false once it is gone, refused past the provider's maximum", async () => {
      const { sandbox } = await create();
      expect(await provider.setTimeout(sandbox.id, 30_000)).toBe(true);
      const max = provider.maxTimeoutMs;
      if (max !== undefined) await expect(provider.setTimeout(sandbox.id, max + 1)).rejects.toThrow(/maximum/);
      await provider.kill(sandbox.id);
      expect(await provider.setTimeout(sandbox.id, 30_000)).toBe(false);
    });

    it("kill() ends the processes, drops the sandbox from list, and is harmless twice", async () => {
      const { sandbox, metadata } = await create();
      const pid = await startServer(sandbox);
      expect(await provider.kill(sandbox.id)).toBe(true);
      expect(await answers(sandbox.url(sandbox.agentPort))).toBeNull();
      if (harness.processRunning) expect(harness.processRunning(pid)).toBe(false);
      expect(await provider.list({ sessionId: metadata.sessionId })).toEqual([]);
      expect(await provider.kill(sandbox.id)).toBe(false);
      await sandbox.kill();
      expect(await sandbox.isAlive()).toBe(false);
      expect(await provider.kill("../../etc")).toBe(false);
    });

    it("the hard timeout ends the sandbox's processes without the fleet's help", async () => {
      const { sandbox } = await create(2_000);
      const { pid } = await sandbox.startBackground({ command: "sleep", args: ["60"] });
      if (harness.processRunning) expect(harness.processRunning(pid)).toBe(true);
      await until(async () => !(await sandbox.isAlive()), 12_000, "the sandbox to time out");
      if (harness.processRunning) await until(() => !harness.processRunning?.(pid), 8_000, "the process to end");
      await rejection(sandbox.startBackground({ command: "sleep", args: ["60"] }));
      await provider.kill(sandbox.id);
    }, 30_000);

    it.skipIf(!harness.crashCreator)(
      "a sandbox whose creator was SIGKILLed stays listable and killable by another process",
      async () => {
        const metadata = meta();
        const { sandboxId, pid } = await (harness.crashCreator as NonNullable<typeof harness.crashCreator>)(metadata);
        created.push(sandboxId);
        const other = harness.makeProvider();
        expect((await other.list({ sessionId: metadata.sessionId })).map((s) => s.id)).toEqual([sandboxId]);
        expect(await (await other.connect(sandboxId))?.isAlive()).toBe(true);
        if (harness.processRunning) expect(harness.processRunning(pid)).toBe(true);
        expect(await other.kill(sandboxId)).toBe(true);
        if (harness.processRunning) expect(harness.processRunning(pid)).toBe(false);
        expect(await other.list({ sessionId: metadata.sessionId })).toEqual([]);
      },
    );

    it("the environment inside holds nothing of the fleet's own but the allowed variables", async () => {
      const secretName = `FLEET_CONFORMANCE_SECRET_${randomBytes(3).toString("hex").toUpperCase()}`;
      const secretValue = `s3cr3t-${randomBytes(8).toString("hex")}`;
      process.env[secretName] = secretValue;
      try {
        const { sandbox } = await create(60_000, { SPEC_VAR: "from-spec" });
        const r = await sandbox.run({ command: "env", args: [], envs: { CMD_VAR: "from-command" } });
        expect(r.exitCode).toBe(0);
        expect(r.stdout).not.toContain(secretValue);
        const inside = new Map(
          r.stdout
            .split("\n")
            .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
            .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const),
        );
        expect(inside.get("SPEC_VAR")).toBe("from-spec");
        expect(inside.get("CMD_VAR")).toBe("from-command");
        expect(inside.has(secretName)).toBe(false);
        const allowed = new Set([...harness.baseEnv, "SPEC_VAR", "CMD_VAR"]);
        const leaked = [...inside.keys()].filter((k) => k in process.env && !allowed.has(k));
        expect(leaked).toEqual([]);
      } finally {
        delete process.env[secretName];
      }
    });
  });
}
