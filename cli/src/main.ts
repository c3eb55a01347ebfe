#!/usr/bin/env node
import { join } from "node:path";
import { FleetError, loadConfig } from "@fleet/shared";
import { repoRoot } from "@fleet/devtools/infra";
import { CliEnv } from "./config.js";
import { infraDown, infraEnv, infraStatusCmd, infraUp, type CliContext } from "./infra.js";
import { testCmd } from "./test-cmd.js";
import { demoCmd } from "./demo.js";
import { downCmd, upCmd } from "./fleet.js";
import { cancelCmd, logsCmd, lsCmd, showCmd, submitCmd } from "./sessions.js";
import { keysCmd } from "./keys.js";

const USAGE = `usage: ./fleet <command>

  demo           start everything on the embedded defaults, run one session end to end, stop
  up             start the infrastructure, the model (scripted unless FLEET_MODEL_URL) and the services
  down           stop what 'up' started
  submit "..."   submit a session: [--project p] [--card c] [--file local[=path]] [--tool t] [-f]
  logs [-f] ID   a session's log lines (-f follows them live)
  ls             sessions of a project: [--project p] [--limit n]
  show ID        a session's state, result and timing breakdown
  cancel ID      end a session in whatever phase it is: [--reason r]
  keys create --project P [--project Q] [--label L] | keys revoke ID | keys ls
                 API keys scoped to projects (* = all); stored hashed, shown once
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
    case "demo":
      return demoCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "up":
      return upCmd(ctx);
    case "down":
      return downCmd(ctx);
    case "submit":
      return submitCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "logs":
      return logsCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "ls":
      return lsCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "show":
      return showCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "cancel":
      return cancelCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
    case "keys":
      return keysCmd(ctx, sub === undefined ? [] : [sub, ...rest]);
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
