import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { SCHEMATHESIS_VERSION, schemathesisCommand } from "../cli/src/schemathesis.js";
import { defaultToolsDir, repoRoot } from "../devtools/src/infra/index.js";
import { useTestFleet } from "./support/fleet-fixture.js";

/**
 * schemathesis (from PyPI; `./fleet test` installs it into .tools/venv) fuzzes every operation of
 * the running api's /openapi.json with a valid key: schema-driven and broken inputs, undeclared
 * methods, requests without the key, and submit -> read/follow/cancel sequences. Any 5xx, any
 * response whose status, content type, headers or body the document does not declare, and any
 * broken input that is not refused fails the run (test/support/schemathesis.toml says which check
 * is off and why). The log stream (server-sent events) is fuzzed too: schemathesis reads each
 * stream until it ends, has sent 20 events or stays silent for the request timeout, and checks
 * every event against the declared event schema.
 */
const CONFIG = "test/support/schemathesis.toml";
const command = schemathesisCommand(defaultToolsDir());

describe("schemathesis against the running api's /openapi.json", () => {
  const fleet = useTestFleet({
    prefix: "fuzz",
    skip: !command,
    model: { scenario: "demo" },
    // Fuzzed submits really run, one sandbox at a time, so they cannot overload the machine.
    // The submit limit is lifted so that every generated submit reaches the api's own checks.
    env: { FLEET_MAX_SANDBOXES: "1", SPAWNER_MAX_IN_FLIGHT: "2", API_SUBMITS_PER_MINUTE: "1000000" },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
  });

  it("finds no server error and nothing the OpenAPI document does not declare", { timeout: 300_000 }, async () => {
    if (!command) {
      throw new Error(
        `schemathesis ${SCHEMATHESIS_VERSION} is not installed in .tools/: run ./fleet test, which installs it from PyPI into .tools/venv (then npm test or vitest finds it)`,
      );
    }
    const args = [
      ...command.args,
      "--config-file",
      CONFIG,
      "--no-color",
      "run",
      `${fleet.apiUrl}/openapi.json`,
      "--header",
      `Authorization: Bearer ${fleet.apiKey}`,
    ];
    const started = Date.now();
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
      // Killed if it ever hangs, well before the test's own timeout, so its report is still shown.
      const child = spawn(command.command, args, {
        cwd: repoRoot(),
        env: { ...process.env, ...command.env, NO_COLOR: "1" },
        timeout: 240_000,
      });
      let output = "";
      child.stdout.on("data", (c: Buffer) => (output += c.toString()));
      child.stderr.on("data", (c: Buffer) => (output += c.toString()));
      child.once("error", reject);
      child.once("close", (c, signal) =>
        resolve({ code: c ?? (signal ? 1 : 0), output: signal ? `${output}\n(killed by ${signal})` : output }),
      );
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    // The whole report goes into the failure message when it fails. On success only one line is
    // printed: schemathesis closes its report with a pytest-style "=== N warnings in Xs ===" line,
    // which log readers take for the summary of a run with no tests. The full report is kept on disk.
    expect(
      code,
      `schemathesis ${SCHEMATHESIS_VERSION} found problems (exit ${code} after ${seconds} s); its report:\n${output}`,
    ).toBe(0);
    const report = join(repoRoot(), ".fleet", "schemathesis-report.txt");
    mkdirSync(dirname(report), { recursive: true });
    writeFileSync(report, output);
    const cases = /(\d+) generated, (\d+) passed/.exec(output);
    process.stdout.write(
      `schemathesis ${SCHEMATHESIS_VERSION}: no problem found (${cases ? `${cases[2]} of ${cases[1]} cases` : "no case count"}, ${seconds} s); report in ${report}\n`,
    );
  });
});
