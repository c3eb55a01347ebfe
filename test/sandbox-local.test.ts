import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import {
  isProcessRunning,
  LOCAL_BASE_ENV,
  LocalSandboxProvider,
  type SandboxMetadata,
} from "../shared/src/sandbox/index.js";
import { eventually, logger } from "./support/fixtures.js";
import { crashCreator } from "./support/crash-creator.js";
import { describeSandboxProviderConformance } from "./support/sandbox-conformance.js";

const root = mkdtempSync(join(tmpdir(), "fleet-sandboxes-"));
// Sandbox users must be able to search their way to their own folders.
chmodSync(root, 0o711);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const isolationProblem = new LocalSandboxProvider({ rootDir: join(root, "probe"), isolation: "bubblewrap" }, logger)
  .isolationProblem;
const bubblewrap = isolationProblem === undefined;
const modes = bubblewrap ? (["none", "bubblewrap"] as const) : (["none"] as const);

for (const isolation of modes) {
  const rootDir = join(root, isolation);
  describeSandboxProviderConformance(`local (${isolation})`, {
    makeProvider: () => new LocalSandboxProvider({ rootDir, isolation }, logger),
    baseEnv: LOCAL_BASE_ENV,
    processRunning: isProcessRunning,
    crashCreator: (metadata) => crashCreator(["local", rootDir, isolation, JSON.stringify(metadata)]),
  });
}

/** A provider of a describe's own, in `folder` under the run's root, and the metadata of its sandboxes for a session. */
function providerOf(folder: string, isolation: "none" | "bubblewrap", fleet: string) {
  const rootDir = join(root, folder);
  return {
    rootDir,
    provider: new LocalSandboxProvider({ rootDir, isolation }, logger),
    metadata: (sessionId: string): SandboxMetadata => ({ fleet, sessionId, projectId: "p", attempt: "1" }),
  };
}

describe("local sandbox provider specifics", () => {
  const { rootDir, provider, metadata } = providerOf("specifics", "none", "specifics");

  it("registers each sandbox in sandbox.json with the agent port, deadline and process groups", async () => {
    const s = await provider.create({ metadata: metadata("reg"), envs: { TOKEN: "t0ps3cret" }, timeoutMs: 30_000 });
    const { pid } = await s.startBackground({ command: "sleep", args: ["30"] });
    const record = JSON.parse(readFileSync(join(provider.rootDir, s.id, "sandbox.json"), "utf8"));
    expect(record).toMatchObject({
      id: s.id,
      provider: "local",
      agentPort: s.agentPort,
      isolation: "none",
      metadata: metadata("reg"),
    });
    expect(record.endAt - record.startedAt).toBe(30_000);
    expect(record.processes.map((p: { pgid: number }) => p.pgid)).toEqual([pid]);
    expect(readFileSync(join(provider.rootDir, s.id, "sandbox.json"), "utf8")).not.toContain("t0ps3cret");
    expect(s.agentPort).toBeGreaterThanOrEqual(20000);
    expect(s.agentPort).toBeLessThanOrEqual(29999);
    expect(readdirSync(join(provider.rootDir, s.id)).sort()).toEqual([
      "bridge",
      "envs.json",
      "home",
      "logs",
      "sandbox.json",
      "tmp",
      "workspace",
    ]);
    await provider.kill(s.id);
  });

  it("gives concurrent sandboxes distinct agent ports", async () => {
    const all = await Promise.all(
      [1, 2, 3, 4].map((i) => provider.create({ metadata: metadata(`ports${i}`), envs: {}, timeoutMs: 30_000 })),
    );
    expect(new Set(all.map((s) => s.agentPort)).size).toBe(4);
    for (const s of all) await provider.kill(s.id);
  });

  it("skips damaged registry records with a warning instead of failing the whole list", async () => {
    const s = await provider.create({ metadata: metadata("damaged"), envs: {}, timeoutMs: 30_000 });
    writeFileSync(join(provider.rootDir, s.id, "sandbox.json"), "{ not json");
    expect((await provider.list({ fleet: "specifics" })).map((x) => x.id)).not.toContain(s.id);
    expect(await provider.kill(s.id)).toBe(false);
    expect(readdirSync(provider.rootDir)).not.toContain(s.id);
  });

  it("sends background output to the sandbox's logs folder", async () => {
    const s = await provider.create({ metadata: metadata("logs"), envs: {}, timeoutMs: 30_000 });
    await s.startBackground({ command: "sh", args: ["-c", "echo to-out; echo to-err >&2"] });
    const logs = join(provider.rootDir, s.id, "logs");
    await new Promise((r) => setTimeout(r, 300));
    const [file] = readdirSync(logs);
    expect(readFileSync(join(logs, file as string), "utf8")).toMatch(/to-out\n|to-err\n/);
    await provider.kill(s.id);
  });

  it("bounds run() by its timeout and caps captured output", async () => {
    const small = new LocalSandboxProvider({ rootDir, isolation: "none", maxOutputBytes: 1024 }, logger);
    const s = await small.create({ metadata: metadata("bounds"), envs: {}, timeoutMs: 30_000 });
    const started = Date.now();
    await expect(s.run({ command: "sleep", args: ["20"] }, { timeoutMs: 300 })).rejects.toMatchObject({
      code: "sandbox",
      retryable: true,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    const big = await s.run({ command: "head", args: ["-c", "100000", "/dev/zero"] });
    expect(big.stdout.length).toBeLessThan(1100);
    expect(big.stdout).toContain("more bytes not captured");
    await small.kill(s.id);
  });

  it("also ends processes that left their process group", async () => {
    const s = await provider.create({ metadata: metadata("setsid"), envs: {}, timeoutMs: 30_000 });
    await s.run({ command: "sh", args: ["-c", "setsid sleep 40 > /dev/null 2>&1 & echo $! > escaped.pid"] });
    const escaped = Number(new TextDecoder().decode((await s.readFile("escaped.pid")) ?? undefined));
    expect(isProcessRunning(escaped)).toBe(true);
    await provider.kill(s.id);
    expect(isProcessRunning(escaped)).toBe(false);
  });

  it("scopes listing to its fleet when configured, and refuses other fleets' metadata", async () => {
    const scoped = new LocalSandboxProvider({ rootDir, isolation: "none", fleet: "specifics-b" }, logger);
    const mine = await scoped.create({
      metadata: { ...metadata("scoped"), fleet: "specifics-b" },
      envs: {},
      timeoutMs: 30_000,
    });
    const theirs = await provider.create({ metadata: metadata("scoped"), envs: {}, timeoutMs: 30_000 });
    expect((await scoped.list({ sessionId: "scoped" })).map((s) => s.id)).toEqual([mine.id]);
    await expect(scoped.create({ metadata: metadata("x"), envs: {}, timeoutMs: 1_000 })).rejects.toMatchObject({
      retryable: false,
    });
    await provider.kill(mine.id);
    await provider.kill(theirs.id);
  });

  it("refuses bad create specs as non-retryable", async () => {
    await expect(
      provider.create({ metadata: { ...metadata("bad"), attempt: "one" }, envs: {}, timeoutMs: 1_000 }),
    ).rejects.toMatchObject({ retryable: false });
    await expect(
      provider.create({ metadata: metadata("bad"), envs: { "A=B": "x" }, timeoutMs: 1_000 }),
    ).rejects.toMatchObject({ retryable: false });
    await expect(provider.create({ metadata: metadata("bad"), envs: {}, timeoutMs: -5 })).rejects.toMatchObject({
      retryable: false,
    });
  });
});

describe.runIf(bubblewrap)("local sandbox provider under bubblewrap", () => {
  const { provider, metadata } = providerOf("bwrap-specifics", "bubblewrap", "bwrap");

  it("refuses a sandbox it cannot isolate, saying why and what to set, and creates nothing", async () => {
    // A folder only the fleet's user may search: no sandbox user could reach its folders there.
    const hidden = mkdtempSync(join(tmpdir(), "fleet-hidden-"));
    const blocked = new LocalSandboxProvider({ rootDir: join(hidden, "sandboxes") }, logger);
    expect(blocked.isolationProblem).toMatch(/not searchable by others/);
    await expect(blocked.create({ metadata: metadata("blocked"), envs: {}, timeoutMs: 30_000 })).rejects.toMatchObject({
      code: "config",
      retryable: false,
      message: expect.stringMatching(/cannot isolate a local sandbox: .*FLEET_SANDBOX_ISOLATION=none/),
    });
    expect(readdirSync(join(hidden, "sandboxes"))).toEqual([]);
    rmSync(hidden, { recursive: true, force: true });
  });

  it("says so when the sandbox's user cannot reach the program it is to run", async () => {
    const hidden = mkdtempSync(join(tmpdir(), "fleet-hidden-bin-"));
    writeFileSync(join(hidden, "agent"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const s = await provider.create({ metadata: metadata("hidden-bin"), envs: {}, timeoutMs: 30_000 });
    await expect(s.startBackground({ command: join(hidden, "agent"), args: [] })).rejects.toMatchObject({
      retryable: false,
      message: expect.stringContaining(`${hidden} is not searchable by others`),
    });
    await provider.kill(s.id);
    rmSync(hidden, { recursive: true, force: true });
  });

  it("is gone once its agent died, although its network bridges still run", async () => {
    const s = await provider.create({ metadata: metadata("dies"), envs: {}, timeoutMs: 30_000 });
    expect(await s.isAlive()).toBe(true);
    const { pid } = await s.startBackground({ command: "sleep", args: ["30"] });
    expect(await s.isAlive()).toBe(true);
    process.kill(-pid, "SIGKILL");
    await eventually(async () => !(await s.isAlive()), 5_000);
    expect((await provider.list({ sessionId: "dies" })).map((x) => x.id)).toEqual([s.id]);
    await provider.kill(s.id);
  });

  it("lets a sandbox reach only loopback endpoints it was given, and refuses any other", async () => {
    for (const url of [
      "https://openrouter.ai/api/v1",
      "http://10.0.0.1:8080/v1",
      "http://127.0.0.1:80/",
      "ftp://127.0.0.1:2121/",
    ]) {
      await expect(
        provider.create({ metadata: metadata("egress"), envs: {}, timeoutMs: 30_000, egress: [url] }),
      ).rejects.toMatchObject({ retryable: false });
    }
    const given = createServer((_req, res) => res.end("given")).listen(0, "127.0.0.1");
    const other = createServer((_req, res) => res.end("other")).listen(0, "127.0.0.1");
    await Promise.all([once(given, "listening"), once(other, "listening")]);
    const port = (srv: Server) => (srv.address() as AddressInfo).port;
    const s = await provider.create({
      metadata: metadata("egress"),
      envs: {},
      timeoutMs: 30_000,
      egress: [`http://127.0.0.1:${port(given)}/v1`],
    });
    // Background commands run where the bridges are: the endpoint given is there, at its own port.
    const fetchTo = (p: number) =>
      `fetch("http://127.0.0.1:${p}/").then(r => r.text(), e => "refused:" + (e.cause?.code ?? e.message)).then(t => require("fs").appendFileSync("seen.txt", t + "\\n"))`;
    await s.startBackground({
      command: process.execPath,
      args: ["-e", `${fetchTo(port(given))}.then(() => ${fetchTo(port(other))})`],
    });
    await eventually(
      async () =>
        (await s.readFile("seen.txt"))
          ? Buffer.from((await s.readFile("seen.txt")) as Uint8Array)
              .toString()
              .split("\n").length > 2
          : false,
      10_000,
    );
    const seen = Buffer.from((await s.readFile("seen.txt")) as Uint8Array)
      .toString()
      .trim()
      .split("\n");
    expect(seen[0]).toBe("given");
    expect(seen[1]).toMatch(/^refused:/);
    await provider.kill(s.id);
    given.close();
    other.close();
  });

  it("shows only the system folders read-only: not the fleet's data, home folders or other sandboxes", async () => {
    const s = await provider.create({ metadata: metadata("view"), envs: {}, timeoutMs: 30_000 });
    // This repository (the fleet's data, .tools and node_modules) and the host's home folders are absent.
    const probe = async (p: string) =>
      (await s.run({ command: "sh", args: ["-c", `test -e "${p}" && echo present || echo absent`] })).stdout.trim();
    expect(await probe(process.cwd())).toBe("absent");
    expect(await probe(join(process.cwd(), "package.json"))).toBe("absent");
    expect(await probe("/root")).toBe("absent");
    expect(await probe("/home")).toBe("absent");
    expect(await probe("/usr/bin/git")).toBe("present");
    // The host's /tmp is replaced by a private one.
    const marker = join(tmpdir(), `fleet-host-marker-${process.pid}`);
    writeFileSync(marker, "host");
    expect(await probe(marker)).toBe("absent");
    rmSync(marker);
    expect((await s.run({ command: "git", args: ["--version"] })).exitCode).toBe(0);
    await provider.kill(s.id);
  });

  it("hides other sandboxes and the registry, and keeps the rest of the filesystem read-only", async () => {
    const a = await provider.create({ metadata: metadata("a"), envs: {}, timeoutMs: 30_000 });
    const b = await provider.create({ metadata: metadata("b"), envs: {}, timeoutMs: 30_000 });
    await b.writeFiles([{ path: "secret.txt", content: "b's" }]);
    const ls = await a.run({ command: "ls", args: ["-A", provider.rootDir] });
    expect(ls.stdout.trim()).toBe(a.id);
    const own = await a.run({ command: "ls", args: ["-A", join(provider.rootDir, a.id)] });
    expect(own.stdout.trim().split("\n").sort()).toEqual(["home", "tmp", "workspace"]);
    expect((await a.run({ command: "cat", args: [join(b.workspace, "secret.txt")] })).exitCode).not.toBe(0);
    expect((await a.run({ command: "touch", args: ["/usr/fleet-write-test"] })).exitCode).not.toBe(0);
    expect((await a.run({ command: "sh", args: ["-c", 'touch "$TMPDIR/ok" "$HOME/ok" ok'] })).exitCode).toBe(0);
    const ps = await a.run({ command: "sh", args: ["-c", "ls /proc | grep -c '^[0-9]'"] });
    expect(Number(ps.stdout.trim())).toBeLessThan(6);
    await provider.kill(a.id);
    await provider.kill(b.id);
  });
});
