import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { z } from "zod";
import { createLogger } from "@fleet/shared/log";
import { Scenario as ScenarioSchema, parseScenario, type Scenario } from "./scenario.js";
import { SCENARIOS, scenarioByName } from "./scenarios/index.js";
import { startScriptedModel } from "./server.js";

/**
 * `node devtools/dist/model/main.js [--port N] [--host H] [--scenario file.json | --scenario-name demo]`
 * Prints the base URL on stdout once listening; logs go to stderr (LOG_LEVEL, default warn).
 * The chosen scenario answers every model id except the built-in names, which play themselves.
 */
const USAGE = `usage: scripted-model [--port N] [--host 127.0.0.1] [--scenario file.json | --scenario-name ${Object.keys(SCENARIOS).join("|")}]`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function loadScenario(file: string | undefined, name: string | undefined): Scenario {
  if (file && name) fail("give either --scenario or --scenario-name, not both");
  if (file) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      fail(`cannot read scenario ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const parsed = ScenarioSchema.safeParse(raw);
    if (!parsed.success) fail(`invalid scenario ${file}:\n${z.prettifyError(parsed.error)}`);
    return parsed.data;
  }
  const builtIn = scenarioByName(name ?? "demo");
  if (!builtIn) fail(`unknown scenario name ${name}`);
  return parseScenario(builtIn);
}

async function main(): Promise<void> {
  let values: { port?: string; host?: string; scenario?: string; "scenario-name"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: "string" },
        host: { type: "string" },
        scenario: { type: "string" },
        "scenario-name": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = z.coerce
    .number()
    .int()
    .min(0)
    .max(65_535)
    .safeParse(values.port ?? "0");
  if (!port.success) fail(`--port must be a port number, got ${values.port}`);
  const scenario = loadScenario(values.scenario, values["scenario-name"]);
  const level = z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .catch("warn")
    .parse(process.env.LOG_LEVEL);
  const logger = createLogger({ name: "scripted-model", level, destination: pino.destination(2) });
  // Every built-in is also reachable by using its name as the model id.
  const model = await startScriptedModel({
    port: port.data,
    host: values.host ?? "127.0.0.1",
    scenario,
    byModel: { ...SCENARIOS },
    logger,
  });
  process.stdout.write(`scripted model listening on ${model.url}\n`);
  const stop = (): void => {
    void model.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`scripted model failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
