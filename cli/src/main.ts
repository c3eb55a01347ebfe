#!/usr/bin/env node
import { join } from "node:path";
import { FleetError, loadConfig } from "@fleet/shared";
import { repoRoot } from "@fleet/shared/infra";
import { CliEnv } from "./config.js";
import { infraDown, infraEnv, infraStatusCmd, infraUp, type CliContext } from "./infra.js";
import { testCmd } from "./test-cmd.js";

const USAGE = `usage: ./fleet <command>

  infra up       start NATS (JetStream) and the store in the background; print their URLs
  infra down     stop what 'infra up' started
  infra status   show whether they run and answer
  infra env      print shell exports for them: eval "$(./fleet infra env)"
  test [args]    build the test servers if needed, then run the test suite (args go to vitest)
  help           this text

Environment: NATS_URL and MONGODB_URI use existing servers instead of starting local ones;
FLEET_HOME moves state and logs (default .fleet/ in the project).`;

async function main(argv: string[]): Promise<number> {
  const root = repoRoot();
  const env = loadConfig(CliEnv, process.env);
  const ctx: CliContext = { env, home: env.FLEET_HOME ?? join(root, ".fleet"), out: (l) => process.stdout.write(`${l}\n`) };
  const [cmd, sub, ...rest] = argv;
  switch (cmd) {
    case "infra":
      switch (sub) {
        case "up":
          return infraUp(ctx);
        case "down":
          return infraDown(ctx);
        case "status":
          return infraStatusCmd(ctx);
        case "env":
          return infraEnv(ctx);
        default:
          process.stderr.write(`unknown infra command '${sub ?? ""}'\n\n${USAGE}\n`);
          return 2;
      }
    case "test":
      return testCmd(ctx, sub === undefined ? [] : [sub, ...rest], root);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command '${cmd}'\n\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fleet: ${err instanceof FleetError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
