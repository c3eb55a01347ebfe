import { Sandbox } from "@e2b/code-interpreter";
import { afterAll, describe, expect, it } from "vitest";
import { startLocalE2B } from "../devtools/src/e2b/index.js";
import { FleetError } from "../shared/src/errors/index.js";
import { E2BSandboxProvider } from "../shared/src/sandbox/index.js";
import { logger } from "./support/fixtures.js";

/**
 * The local E2B itself, through the unmodified SDK (envd's process and filesystem services, the
 * control plane's timeout and pagination) and through the fleet's adapter (its fault knobs).
 * One local E2B per describe, so that a fault set in one never reaches another's cases.
 */

const e2bFor = async () => {
  const e2b = await startLocalE2B({}, logger);
  afterAll(() => e2b.stop());
  const sdk = { apiKey: e2b.apiKey, apiUrl: e2b.apiUrl, sandboxUrl: e2b.sandboxUrl };
  const provider = new E2BSandboxProvider(
    { apiKey: e2b.apiKey, template: "opencode", apiUrl: e2b.apiUrl, sandboxUrl: e2b.sandboxUrl, portUrl: e2b.portUrl },
    logger,
  );
  return { e2b, sdk, provider };
};
const meta = (sessionId: string) => ({ fleet: "le2b", sessionId, projectId: "p", attempt: "1" });

async function refusal(p: Promise<unknown>): Promise<FleetError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FleetError);
  return err as FleetError;
}

describe("local E2B: envd and the control plane through the SDK", async () => {
  const { e2b, sdk } = await e2bFor();

  it.concurrent("streams a process's output, takes its stdin, lists, reconnects to and signals it", async ({
    expect,
  }) => {
    const sbx = await Sandbox.create("opencode", { ...sdk, timeoutMs: 60_000 });
    const seen: string[] = [];
    const cat = await sbx.commands.run("cat", { background: true, stdin: true, onStdout: (d) => void seen.push(d) });
    expect((await sbx.commands.list()).map((p) => p.pid)).toContain(cat.pid);
    await sbx.commands.sendStdin(cat.pid, "hello through stdin\n");
    await expect.poll(() => seen.join(""), { timeout: 10_000 }).toBe("hello through stdin\n");
    await sbx.commands.closeStdin(cat.pid);
    expect((await cat.wait()).exitCode).toBe(0);

    const sleeper = await sbx.commands.run("echo started; sleep 60", { background: true });
    await sleeper.disconnect();
    const again = await sbx.commands.connect(sleeper.pid);
    expect(await sbx.commands.kill(sleeper.pid)).toBe(true);
    const end = await again.wait().catch((err: { exitCode?: number }) => err);
    expect((end as { exitCode?: number }).exitCode).not.toBe(0);
    expect((await sbx.commands.list()).map((p) => p.pid)).not.toContain(sleeper.pid);
    await sbx.kill();
  });

  it.concurrent("serves the filesystem calls: make, list, stat, rename, remove", async ({ expect }) => {
    const sbx = await Sandbox.create("opencode", { ...sdk, timeoutMs: 60_000 });
    expect(await sbx.files.makeDir("dir/sub")).toBe(true);
    expect(await sbx.files.makeDir("dir/sub")).toBe(false);
    await sbx.files.write("dir/sub/a.txt", "alpha");
    expect((await sbx.files.list("dir/sub")).map((e) => [e.name, e.type])).toEqual([["a.txt", "file"]]);
    expect((await sbx.files.getInfo("/home/user/dir/sub/a.txt")).size).toBe(5);
    await sbx.files.rename("dir/sub/a.txt", "dir/b.txt");
    expect(await sbx.files.read("dir/b.txt")).toBe("alpha");
    await sbx.files.remove("dir");
    expect(await sbx.files.exists("dir")).toBe(false);
    // The process runs as E2B's user, in its home, with the workspace below it.
    const who = await sbx.commands.run("echo $HOME $USER; pwd; ls -d workspace");
    expect(who.stdout).toBe("/home/user user\n/home/user\nworkspace\n");
    await sbx.kill();
  });

  it.concurrent("extends and shortens a sandbox's timeout, and pages its list", async ({ expect }) => {
    const tag = `page-${Date.now()}`;
    const made = await Promise.all(
      [1, 2, 3].map(() => Sandbox.create("opencode", { ...sdk, timeoutMs: 30_000, metadata: { tag } })),
    );
    const first = made[0] as Sandbox;
    const before = (await Sandbox.getInfo(first.sandboxId, sdk)).endAt.getTime();
    await Sandbox.setTimeout(first.sandboxId, 600_000, sdk);
    expect((await Sandbox.getInfo(first.sandboxId, sdk)).endAt.getTime()).toBeGreaterThan(before + 500_000);
    const pages: string[][] = [];
    const paginator = Sandbox.list({ ...sdk, query: { metadata: { tag } }, limit: 2 });
    while (paginator.hasNext) pages.push((await paginator.nextItems()).map((s) => s.sandboxId));
    expect(pages.map((p) => p.length)).toEqual([2, 1]);
    expect(pages.flat().sort()).toEqual(made.map((s) => s.sandboxId).sort());
    // A timeout that lapses ends the sandbox, as E2B's does.
    await Sandbox.setTimeout(first.sandboxId, 1_000, sdk);
    await expect.poll(() => first.isRunning(), { timeout: 10_000, interval: 200 }).toBe(false);
    expect(e2b.sandboxIds()).not.toContain(first.sandboxId);
    await Promise.all(made.slice(1).map((s) => s.kill()));
  });

  it.concurrent("checks every request: a wrong key is 401, a malformed create 400, an unknown sandbox 404", async ({
    expect,
  }) => {
    const post = (body: unknown, key = e2b.apiKey) =>
      fetch(`${e2b.apiUrl}/v2/sandboxes`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ templateID: "opencode" }, "e2b_wrong")).status).toBe(401);
    const bad = await post({ templateID: 7, timeout: -1 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/templateID/);
    const gone = await fetch(`${e2b.apiUrl}/sandboxes/no-such`, { headers: { "x-api-key": e2b.apiKey } });
    expect(gone.status).toBe(404);
    const traffic = await fetch(`${e2b.sandboxUrl}/health`, { headers: { "e2b-sandbox-id": "no-such" } });
    expect(traffic.status).toBe(502);
    // envd answers only with the sandbox's access token (from create or connect).
    const sbx = await Sandbox.create("opencode", { ...sdk, timeoutMs: 30_000 });
    const rpc = (token?: string) =>
      fetch(`${e2b.sandboxUrl}/process.Process/List`, {
        method: "POST",
        headers: {
          "e2b-sandbox-id": sbx.sandboxId,
          "e2b-sandbox-port": "49983",
          "content-type": "application/json",
          ...(token ? { "x-access-token": token } : {}),
        },
        body: "{}",
      });
    expect((await rpc()).status).toBe(401);
    expect((await rpc("wrong")).status).toBe(401);
    expect((await sbx.commands.list()).length).toBe(0);
    await sbx.kill();
  });
});

describe("local E2B fault knobs, as the fleet's e2b adapter sees them", async () => {
  const { e2b, provider } = await e2bFor();

  it("rate limits creates with Retry-After (the SDK waits and retries), then quota 429s map to rate_limited", async () => {
    e2b.setFaults({ rateLimitCreates: 1, retryAfterSeconds: 1 });
    const started = Date.now();
    const first = await provider.create({ metadata: meta("rl1"), envs: {}, timeoutMs: 60_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(e2b.stats().rateLimited).toBe(1);

    e2b.setFaults({ maxConcurrent: 1 });
    const refused = await refusal(provider.create({ metadata: meta("rl2"), envs: {}, timeoutMs: 60_000 }));
    expect([refused.code, refused.retryable]).toEqual(["rate_limited", true]);
    expect(e2b.stats().quotaRejected).toBeGreaterThanOrEqual(1);
    await first.kill();
    const second = await provider.create({ metadata: meta("rl3"), envs: {}, timeoutMs: 60_000 });
    expect(e2b.stats().peakRunning).toBe(1);
    await second.kill();
    e2b.setFaults({ maxConcurrent: undefined });
  });

  it("answers 5xx and slow creates on demand: retryable errors, then a create that waits; and 5xx to set-timeout", async () => {
    e2b.setFaults({ failCreates: 2, failStatus: 503 });
    for (let i = 0; i < 2; i++) {
      const err = await refusal(provider.create({ metadata: meta(`f${i}`), envs: {}, timeoutMs: 60_000 }));
      expect([err.code, err.retryable]).toEqual(["sandbox", true]);
    }
    e2b.setFaults({ createDelayMs: 1_500 });
    const started = Date.now();
    const slow = await provider.create({ metadata: meta("slow"), envs: {}, timeoutMs: 60_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    e2b.setFaults({ createDelayMs: 0 });
    // A set-timeout E2B fails is the adapter's error, and the sandbox keeps the end it had.
    e2b.setFaults({ failSetTimeouts: 1 });
    const failed = await refusal(provider.setTimeout(slow.id, 30_000));
    expect(failed.retryable).toBe(true);
    expect(await provider.setTimeout(slow.id, 30_000)).toBe(true);
    expect([e2b.stats().timeoutsFailed, e2b.stats().timeoutsSet]).toEqual([1, 1]);
    await slow.kill();
  });

  it("kills a sandbox behind the fleet's back and lets another's timeout lapse", async () => {
    const [a, b] = await Promise.all(
      ["kb", "exp"].map((id) => provider.create({ metadata: meta(id), envs: {}, timeoutMs: 60_000 })),
    );
    if (!a || !b) throw new Error("two sandboxes expected");
    expect(await e2b.killSandbox(a.id)).toBe(true);
    expect(await a.isAlive()).toBe(false);
    expect(await provider.connect(a.id)).toBeNull();
    expect(e2b.expireSandbox(b.id)).toBe(true);
    await expect.poll(() => b.isAlive(), { timeout: 10_000, interval: 100 }).toBe(false);
    expect(await provider.list({ fleet: "le2b" })).toEqual([]);
    await expect.poll(() => e2b.stats().expired, { timeout: 5_000, interval: 100 }).toBe(1);
  });
});
