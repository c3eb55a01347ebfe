import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The CLI as shipped: the compiled file (tsc -b runs before the suite in `./fleet test`).
const MAIN = fileURLToPath(new URL("../../dist/model/main.js", import.meta.url));

function run(args: string[]): { lines: Promise<string>; exit: Promise<number | null>; kill: () => void } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const lines = new Promise<string>((resolve) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out);
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.once("exit", () => resolve(out));
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { lines, exit, kill: () => child.kill("SIGTERM") };
}

describe.skipIf(!existsSync(MAIN))("scripted model CLI", () => {
  it("prints its URL, serves the named scenario and exits 0 on SIGTERM", async () => {
    const cli = run(["--port", "0", "--scenario-name", "text-only"]);
    const line = await cli.lines;
    const url = /scripted model listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(line)?.[1];
    expect(url, line).toBeDefined();
    const res = await fetch(`${url}/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ tools: [{}], messages: [{ role: "user", content: "hi" }] }),
    });
    expect(((await res.json()) as { choices: Array<{ finish_reason: string }> }).choices[0]?.finish_reason).toBe(
      "stop",
    );
    cli.kill();
    expect(await cli.exit).toBe(0);
  });

  it("refuses an invalid scenario file with the zod issues", async () => {
    const dir = mkdtempSync(join(tmpdir(), "scenario-"));
    try {
      writeFileSync(join(dir, "bad.json"), JSON.stringify({ turns: [{ type: "dance" }] }));
      const cli = run(["--scenario", join(dir, "bad.json")]);
      expect(await cli.exit).toBe(2);
      expect(await cli.lines).toMatch(/invalid scenario/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
