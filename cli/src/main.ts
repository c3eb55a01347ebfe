#!/usr/bin/env node
import { join } from "node:path";
import { FleetError, loadConfig } from "@fleet/shared";
import { repoRoot } from "@fleet/devtools/infra";
import { CliEnv } from "./config.js";
import { clusterArg, infraDown, infraEnv, infraStatusCmd, infraUp, type CliContext } from "./infra.js";
import { testCmd } from "./test-cmd.js";
import { demoCmd } from "./demo.js";
import { downCmd, upCmd } from "./fleet.js";
import { cancelCmd, logsCmd, lsCmd, showCmd, submitCmd } from "./sessions.js";
import { keysCmd } from "./keys.js";
import { poolCmd } from "./pool.js";
import { COMMANDS, type CommandName } from "./commands.js";

type Run = (ctx: CliContext, args: string[], root: string) => number | Promise<number>;

/** What each command runs: every name of COMMANDS has one. */
const RUN: Record<CommandName, Run> = {
  demo: (ctx, args) => demoCmd(ctx, args),
  up: (ctx, args) => upCmd(ctx, clusterArg(args)),
  down: (ctx) => downCmd(ctx),
  submit: (ctx, args) => submitCmd(ctx, args),
  logs: (ctx, args) => logsCmd(ctx, args),
  ls: (ctx, args) => lsCmd(ctx, args),
  show: (ctx, args) => showCmd(ctx, args),
  cancel: (ctx, args) => cancelCmd(ctx, args),
  keys: (ctx, args) => keysCmd(ctx, args),
  pool: (ctx) => poolCmd(ctx),
  "infra up": (ctx, args) => infraUp(ctx, clusterArg(args)),
  "infra down": (ctx) => infraDown(ctx),
  "infra status": (ctx) => infraStatusCmd(ctx),
  "infra env": (ctx) => infraEnv(ctx),
  test: (ctx, args, root) => testCmd(ctx, args, root),
  help: () => help(0),
};

function usage(): string {
  const lines = COMMANDS.map((c) => {
    const head = "args" in c ? `${c.name} ${c.args}` : c.name;
    // A long head gets the description on its own line.
    return head.length <= 14 ? `  ${head.padEnd(15)}${c.about}` : `  ${head}\n${" ".repeat(17)}${c.about}`;
  });
  return `usage: ./fleet <command>

${lines.join("\n")}

Environment: NATS_URL and MONGODB_URI use existing servers instead of starting local ones;
FLEET_HOME moves state and logs (default .fleet/ in the project).`;
}

function help(code: number): number {
  (code === 0 ? process.stdout : process.stderr).write(`${usage()}\n`);
  return code;
}

/** The command the arguments name, longest name first (`infra up` before a bare `infra`), and the rest. */
function resolve(argv: readonly string[]): { name: CommandName; args: string[] } | undefined {
  for (const { name } of [...COMMANDS].sort((a, b) => b.name.split(" ").length - a.name.split(" ").length)) {
    const words = name.split(" ");
    if (words.every((w, i) => argv[i] === w)) return { name, args: argv.slice(words.length) };
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const root = repoRoot();
  const env = loadConfig(CliEnv, process.env);
  const ctx: CliContext = {
    env,
    home: env.FLEET_HOME ?? join(root, ".fleet"),
    out: (l) => process.stdout.write(`${l}\n`),
  };
  if (argv[0] === undefined) return help(2);
  if (argv[0] === "--help" || argv[0] === "-h") return help(0);
  const found = resolve(argv);
  if (!found) {
    process.stderr.write(`unknown command '${argv.slice(0, argv[0] === "infra" ? 2 : 1).join(" ")}'\n\n`);
    return help(2);
  }
  return RUN[found.name](ctx, found.args, root);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `fleet: ${err instanceof FleetError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
