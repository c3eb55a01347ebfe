#!/usr/bin/env node
import { join } from "node:path";
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { about, COMMANDS, EXIT, exitCodeOf, oneLine } from "./commands.js";
import type { CliContext } from "./infra.js";

const ENVIRONMENT = `Environment: NATS_URL and MONGODB_URI use existing servers instead of starting local ones;
FLEET_API_URL and FLEET_API_KEY name the api and key of submit, logs, ls, show and cancel;
FLEET_HOME moves state and logs (default .fleet/ in the project).

Exit codes: 0 done; 1 failed (a session that did not complete, a refusal of the fleet, a check
that found something down); 2 wrong usage; 3 the fleet could not be reached.`;

const cluster = {
  cluster: {
    type: "number",
    describe: "run NATS as a local cluster of N nodes (3 to 7: a majority survives the loss of a node)",
  },
} as const;
const clusterOk = (a: { cluster?: number | undefined }): true | string =>
  a.cluster === undefined ||
  (Number.isInteger(a.cluster) && a.cluster >= 3 && a.cluster <= 7) ||
  "--cluster takes a node count from 3 to 7";

const json = {
  json: { type: "boolean", default: false, describe: "print JSON (one document, or JSON lines when following)" },
} as const;

/**
 * `./fleet`: every command and subcommand with its own --help, shell completion, and one-line
 * errors (the stack only with FLEET_DEBUG=1). Each handler answers an exit code (commands.ts, EXIT).
 */
function cli(argv: string[], ctx: () => Promise<CliContext>, done: (code: number) => void): Argv {
  // Each command's module is loaded when it runs, so help, completion and usage errors stay quick.
  const run = (command: (c: CliContext) => number | Promise<number>) => ctx().then(command).then(done);
  return yargs(argv)
    .scriptName("./fleet")
    .usage("usage: ./fleet <command> [options]")
    .command(
      "demo",
      about("demo"),
      (y) =>
        y
          .option("prompt", { type: "string", describe: "what the demo session asks the agent" })
          .option("keep", { type: "boolean", default: false, describe: "keep the sandbox folder afterwards" })
          .option("provider", {
            choices: ["local", "e2b"] as const,
            default: "local" as const,
            describe: "where sandboxes run: local, or the fleet's e2b provider on a local E2B started for the demo",
          }),
      (a) => run(async (c) => (await import("./demo.js")).demoCmd(c, a)),
    )
    .command(
      "up",
      about("up"),
      (y) =>
        y
          .option("pool", {
            type: "number",
            describe: "keep a warm pool of N ready agents (FLEET_POOL_MIN = FLEET_POOL_MAX = N, 1 to 1000)",
          })
          .check((a) => !Number.isNaN(a.pool) || "--pool must be a number")
          .options(cluster)
          .check(clusterOk),
      (a) =>
        run(async (c) =>
          (await import("./fleet.js")).upCmd(c, a.pool, a.cluster !== undefined ? { cluster: a.cluster } : {}),
        ),
    )
    .command("down", about("down"), {}, () => run(async (c) => (await import("./fleet.js")).downCmd(c)))
    .command(
      "submit <prompt..>",
      about("submit"),
      (y) =>
        y
          .positional("prompt", {
            type: "string",
            array: true,
            demandOption: true,
            describe: "the prompt (words are joined)",
          })
          .option("project", { type: "string", default: "default", describe: "the project" })
          .option("card", { type: "string", describe: "the card: its older active sessions are superseded" })
          .option("file", {
            type: "string",
            array: true,
            default: [] as string[],
            describe: "local[=path]: a file to restore into the workspace (repeatable)",
          })
          .option("tool", {
            type: "string",
            array: true,
            default: [] as string[],
            describe: "a tool the agent may use (repeatable)",
          })
          .option("model", { type: "string", describe: "the model id" })
          .option("max-tokens", { type: "number", describe: "the session's budget in tokens (in + out)" })
          .option("max-cost", { type: "number", describe: "the session's budget in cost" })
          .option("id", { type: "string", describe: "the session id (a retry with the same id is the same session)" })
          .option("follow", {
            alias: "f",
            type: "boolean",
            default: false,
            describe: "print the log live until the session ends",
          })
          .options(json)
          .check((a) => a.prompt.join(" ").trim() !== "" || 'a prompt is required: ./fleet submit "what to do"')
          .check((a) => !Number.isNaN(a["max-tokens"]) || "--max-tokens must be a number")
          .check((a) => !Number.isNaN(a["max-cost"]) || "--max-cost must be a number"),
      (a) =>
        run(async (c) =>
          (await import("./sessions.js")).submitCmd(c, {
            prompt: a.prompt.join(" ").trim(),
            project: a.project,
            card: a.card,
            file: a.file,
            tool: a.tool,
            model: a.model,
            maxTokens: a["max-tokens"],
            maxCost: a["max-cost"],
            id: a.id,
            follow: a.follow,
            json: a.json,
          }),
        ),
    )
    .command(
      "logs <id>",
      about("logs"),
      (y) =>
        y
          .positional("id", { type: "string", demandOption: true, describe: "the session id" })
          .option("follow", {
            alias: "f",
            type: "boolean",
            default: false,
            describe: "follow live until the session ends",
          })
          .options(json),
      (a) => run(async (c) => (await import("./sessions.js")).logsCmd(c, a)),
    )
    .command(
      "ls",
      about("ls"),
      (y) =>
        y
          .option("project", { type: "string", default: "default", describe: "the project" })
          .option("limit", { type: "number", default: 20, describe: "how many, newest first (1 to 200)" })
          .options(json)
          .check(
            (a) =>
              (Number.isInteger(a.limit) && a.limit >= 1 && a.limit <= 200) ||
              "--limit must be a whole number from 1 to 200",
          ),
      (a) => run(async (c) => (await import("./sessions.js")).lsCmd(c, a)),
    )
    .command(
      "show <id>",
      about("show"),
      (y) => y.positional("id", { type: "string", demandOption: true, describe: "the session id" }).options(json),
      (a) => run(async (c) => (await import("./sessions.js")).showCmd(c, a)),
    )
    .command(
      "cancel <id>",
      about("cancel"),
      (y) =>
        y
          .positional("id", { type: "string", demandOption: true, describe: "the session id" })
          .option("reason", { type: "string", describe: "why (up to 500 characters)" }),
      (a) => run(async (c) => (await import("./sessions.js")).cancelCmd(c, a)),
    )
    .command("keys", about("keys"), (y) =>
      y
        .command(
          "create",
          about("keys create"),
          (k) =>
            k
              .option("project", {
                type: "string",
                array: true,
                demandOption: true,
                describe: "a project the key may use (* = all; repeatable)",
              })
              .option("label", { type: "string", default: "", describe: "what the key is for" })
              .options(json),
          (a) => run(async (c) => (await import("./keys.js")).keysCreateCmd(c, a)),
        )
        .command(
          "revoke <id>",
          about("keys revoke"),
          (k) => k.positional("id", { type: "string", demandOption: true, describe: "the key id" }),
          (a) => run(async (c) => (await import("./keys.js")).keysRevokeCmd(c, a)),
        )
        .command(
          "ls",
          about("keys ls"),
          (k) => k.options(json),
          (a) => run(async (c) => (await import("./keys.js")).keysLsCmd(c, a)),
        )
        .demandCommand(1, "name a keys command: create, revoke or ls"),
    )
    .command(
      "pool",
      about("pool"),
      (y) => y.options(json),
      (a) => run(async (c) => (await import("./pool.js")).poolCmd(c, a)),
    )
    .command("infra", about("infra"), (y) =>
      y
        .command(
          "up",
          about("infra up"),
          (u) => u.options(cluster).check(clusterOk),
          (a) =>
            run(async (c) =>
              (await import("./infra.js")).infraUp(c, a.cluster !== undefined ? { cluster: a.cluster } : {}),
            ),
        )
        .command("down", about("infra down"), {}, () => run(async (c) => (await import("./infra.js")).infraDown(c)))
        .command(
          "status",
          about("infra status"),
          (s) => s.options(json),
          (a) => run(async (c) => (await import("./infra.js")).infraStatusCmd(c, a)),
        )
        .command("env", about("infra env"), {}, () => run(async (c) => (await import("./infra.js")).infraEnv(c)))
        .demandCommand(1, "name an infra command: up, down, status or env"),
    )
    .command(
      "test [args..]",
      about("test"),
      (y) =>
        y
          .positional("args", {
            type: "string",
            array: true,
            default: [] as string[],
            describe: "arguments for vitest",
          })
          .parserConfiguration({ "unknown-options-as-args": true }),
      (a) => run(async (c) => (await import("./test-cmd.js")).testCmd(c, a.args, c.root)),
    )
    .command("help", about("help"), {}, () => done(EXIT.ok))
    .completion("completion", about("completion"))
    .demandCommand(1, "name a command")
    .recommendCommands()
    .strict()
    .strictOptions()
    .help()
    .alias("help", "h")
    .version(false)
    .epilog(ENVIRONMENT)
    .wrap(null);
}

class UsageError extends Error {}

/** First words of the commands, to tell an unknown command from a wrong option. */
const KNOWN = new Set(COMMANDS.map((c) => c.name.split(" ")[0] as string));

async function main(): Promise<number> {
  const argv = hideBin(process.argv);
  let code: number = EXIT.ok;
  // Read when a command runs, so `--help` works whatever the environment holds.
  const ctx = async (): Promise<CliContext> => {
    const [{ loadConfig }, { repoRoot }, { CliEnv }] = await Promise.all([
      import("@fleet/shared"),
      import("@fleet/devtools/infra"),
      import("./config.js"),
    ]);
    const env = loadConfig(CliEnv, process.env);
    const root = repoRoot();
    return { env, root, home: env.FLEET_HOME ?? join(root, ".fleet"), out: (l) => process.stdout.write(`${l}\n`) };
  };
  const parser = cli(argv, ctx, (c) => {
    code = c;
  })
    .exitProcess(false)
    // Throwing stops yargs before it runs the handler of a command whose arguments are wrong.
    .fail((message, err) => {
      throw err && err.name !== "YError" ? err : new UsageError(message ?? err?.message ?? "wrong usage");
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    // A failed .check() of an async parse arrives as its message, a plain string.
    if (!(err instanceof UsageError) && typeof err !== "string") throw err;
    const unknown = argv[0] !== undefined && !KNOWN.has(argv[0]) && !argv[0].startsWith("-");
    const what = unknown ? `unknown command '${argv[0]}'` : typeof err === "string" ? err : err.message;
    process.stderr.write(`fleet: ${what} (./fleet --help lists the commands and options)\n`);
    return EXIT.usage;
  }
  if (argv[0] === "help") parser.showHelp("log");
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fleet: ${oneLine(err)}\n`);
    if (process.env.FLEET_DEBUG === "1" && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exit(exitCodeOf(err));
  },
);
