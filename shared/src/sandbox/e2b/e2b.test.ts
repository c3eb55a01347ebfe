import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuthenticationError,
  RateLimitError,
  SandboxError,
  SandboxNotFoundError,
  ServiceBusyError,
  TimeoutError,
} from "@e2b/code-interpreter";
import { afterAll, describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { createLogger } from "../../log/index.js";
import { isProviderQuota } from "../quota.js";
import { isNotFound, mapE2BError } from "./errors.js";
import { checkGuardOutput, pathGuardLine } from "./guard.js";
import { collectPages, E2BSandboxProvider, e2bListOptions, workspaceInitLine } from "./provider.js";
import { backgroundLine, e2bCwd, e2bPath } from "./sandbox.js";

const logger = createLogger({ name: "e2b-test", level: "silent" });
const tmp = mkdtempSync(join(tmpdir(), "e2b-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sh = (line: string) =>
  execFileSync("/bin/sh", ["-c", line], { encoding: "utf8", env: { PATH: "/usr/bin:/bin", HOME: tmp } });

describe("E2BSandboxProvider construction", () => {
  it("fails clearly without an API key, as a non-retryable config error", () => {
    for (const apiKey of [undefined, ""]) {
      try {
        new E2BSandboxProvider({ apiKey, template: "opencode" } as never, logger);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(FleetError);
        expect((err as FleetError).code).toBe("config");
        expect((err as FleetError).retryable).toBe(false);
        expect((err as FleetError).message).toMatch(/API key/);
      }
    }
  });

  it("never puts the key in its errors", () => {
    try {
      new E2BSandboxProvider({ apiKey: "e2b_supersecret", template: "", agentPort: 0 }, logger);
      expect.unreachable();
    } catch (err) {
      expect((err as FleetError).message).not.toContain("supersecret");
    }
  });

  it("constructs without touching the network", () => {
    const p = new E2BSandboxProvider({ apiKey: "e2b_test", template: "opencode" }, logger);
    expect(p.name).toBe("e2b");
  });
});

describe("E2B error mapping", () => {
  it("maps a rejected key to a non-retryable config error", () => {
    const e = mapE2BError(new AuthenticationError("Unauthorized"), "create");
    expect([e.code, e.retryable]).toEqual(["config", false]);
  });

  it("maps rate limits to retryable rate_limited errors, busy service and timeouts to retryable sandbox errors", () => {
    const limited = mapE2BError(new RateLimitError("429"), "create");
    expect([limited.code, limited.retryable]).toEqual(["rate_limited", true]);
    for (const err of [new ServiceBusyError("503"), new TimeoutError("slow")]) {
      const e = mapE2BError(err, "create");
      expect([e.code, e.retryable]).toEqual(["sandbox", true]);
    }
  });

  it("maps a 429 or a concurrent-sandbox limit to the port's quota error, with Retry-After and the limit when given", () => {
    const concurrent = mapE2BError(
      new RateLimitError(
        "Rate limit exceeded, please try again later - You have reached the maximum number of concurrent E2B sandboxes (20)",
      ),
      "create",
    );
    expect(isProviderQuota(concurrent)).toBe(true);
    if (!isProviderQuota(concurrent)) return;
    expect([concurrent.code, concurrent.retryable, concurrent.kind, concurrent.limit, concurrent.retryAfterMs]).toEqual(
      ["rate_limited", true, "concurrency", 20, undefined],
    );
    const withHeader = Object.assign(new SandboxError("429: slow down"), {
      statusCode: 429,
      response: { headers: new Headers({ "Retry-After": "7" }) },
    });
    const mapped = mapE2BError(withHeader, "create");
    expect(isProviderQuota(mapped) ? [mapped.retryAfterMs, mapped.kind] : "not a quota error").toEqual([7_000, "rate"]);
    expect(mapped.cause).toBe(withHeader);
  });

  it("maps HTTP statuses carried by SDK errors", () => {
    const withStatus = (status: number) => Object.assign(new SandboxError(`${status}: x`), { statusCode: status });
    expect(mapE2BError(withStatus(500), "list").retryable).toBe(true);
    expect([mapE2BError(withStatus(429), "list").code, mapE2BError(withStatus(429), "list").retryable]).toEqual([
      "rate_limited",
      true,
    ]);
    expect(mapE2BError(withStatus(400), "create").retryable).toBe(false);
    expect(mapE2BError(withStatus(403), "create").code).toBe("config");
    expect(isNotFound(withStatus(404))).toBe(true);
    expect(isNotFound(new SandboxNotFoundError("gone"))).toBe(true);
  });

  it("maps a real network failure (fetch to a closed port) to a retryable sandbox error", async () => {
    const err = await fetch("http://127.0.0.1:9/").catch((e: unknown) => e);
    const e = mapE2BError(err, "list");
    expect([e.code, e.retryable]).toEqual(["sandbox", true]);
    expect(e.cause).toBe(err);
  });

  it("keeps FleetErrors as they are", () => {
    const original = new FleetError("sandbox", "x", { retryable: false });
    expect(mapE2BError(original, "run")).toBe(original);
  });
});

describe("E2B listing", () => {
  it("queries by metadata, dropping keys without a value", () => {
    expect(e2bListOptions({ fleet: "f", sessionId: "s1", projectId: undefined })).toEqual({
      query: { metadata: { fleet: "f", sessionId: "s1" } },
      limit: 100,
    });
    expect(e2bListOptions()).toEqual({ query: { metadata: {} }, limit: 100 });
  });

  it("drains every page and stops at the page bound", async () => {
    const pages = [[1, 2], [3], []];
    const paginator = {
      get hasNext() {
        return pages.length > 0;
      },
      nextItems: async () => pages.shift() ?? [],
    };
    expect(await collectPages(paginator)).toEqual([1, 2, 3]);
    const endless = { hasNext: true, nextItems: async () => [0] };
    await expect(collectPages(endless, 3)).rejects.toMatchObject({ code: "sandbox", retryable: true });
  });
});

describe("E2B paths and command lines", () => {
  it("maps relative paths below the workspace or home and refuses escapes", () => {
    expect(e2bPath("a/b.txt")).toBe("/home/user/workspace/a/b.txt");
    expect(e2bPath(".config/opencode/x.json", "home")).toBe("/home/user/.config/opencode/x.json");
    expect(e2bCwd(undefined)).toBe("/home/user/workspace");
    expect(e2bCwd("src")).toBe("/home/user/workspace/src");
    for (const bad of ["../x", "/etc/passwd", "a/../../x", "a\0b"]) expect(() => e2bPath(bad)).toThrow(FleetError);
    expect(() => e2bCwd("../..")).toThrow(FleetError);
  });

  it("the symlink guard line, run by a real shell, refuses links out of the base", () => {
    const base = join(tmp, "guard", "workspace");
    const outside = join(tmp, "guard", "outside");
    mkdirSync(join(base, "sub"), { recursive: true });
    mkdirSync(outside, { recursive: true });
    symlinkSync(outside, join(base, "out"));
    symlinkSync(join(base, "sub"), join(base, "in"));
    symlinkSync(join(outside, "t.txt"), join(base, "filelink"));
    writeFileSync(join(base, "ok.txt"), "x");
    const check = (rel: string[]) => {
      const abs = rel.map((r) => join(base, r));
      checkGuardOutput(sh(pathGuardLine(base, abs)), rel);
    };
    expect(() => check(["ok.txt", "new/deep/file", "sub/x", "in/x", "we ird\n'name$(x)"])).not.toThrow();
    expect(() => check(["ok.txt", "out/pwned"])).toThrow(/outside/);
    expect(() => check(["filelink"])).toThrow(/symlink/);
    expect(() => check(["sub"])).toThrow(/regular file/);
  });

  it("the workspace setup line, run by a real shell, makes a git repository with one empty commit (idempotently)", () => {
    const ws = join(tmp, "ws with space");
    sh(workspaceInitLine(ws));
    sh(workspaceInitLine(ws));
    expect(sh(`git -C '${ws}' log --format=%s`).trim()).toBe("Initial empty commit");
  });

  it("the background line appends the command's output to its log and passes arguments literally", () => {
    const logs = join(tmp, "logs dir");
    const line = backgroundLine({ command: "printf", args: ["%s|", "a b", "$(id)", "it's"] }, "1-printf.log", logs);
    sh(line);
    sh(line);
    expect(readFileSync(join(logs, "1-printf.log"), "utf8")).toBe("a b|$(id)|it's|a b|$(id)|it's|");
  });
});
