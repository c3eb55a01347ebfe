/**
 * Every command of `./fleet`: the help text and dispatch (cli/src/main.ts) come from this one list,
 * and a suite check holds the README's command table to it (test/cli.test.ts).
 */
export const COMMANDS = [
  { name: "demo", about: "start everything on the embedded defaults, run one session end to end, stop" },
  {
    name: "up",
    args: "[--cluster N]",
    about:
      "start the infrastructure (--cluster 3: a three-node NATS cluster), the model (scripted unless FLEET_MODEL_URL), the model gateway and the services",
  },
  { name: "down", about: "stop what 'up' started" },
  {
    name: "submit",
    args: '"..."',
    about:
      "submit a session: [--project p] [--card c] [--file local[=path]] [--tool t] [--max-tokens n] [--max-cost c] [-f]",
  },
  { name: "logs", args: "[-f] ID", about: "a session's log lines (-f follows them live)" },
  { name: "ls", about: "sessions of a project: [--project p] [--limit n]" },
  { name: "show", args: "ID", about: "a session's state, result and timing breakdown" },
  { name: "cancel", args: "ID", about: "end a session in whatever phase it is: [--reason r]" },
  {
    name: "keys",
    args: "create --project P [--project Q] [--label L] | keys revoke ID | keys ls",
    about: "API keys scoped to projects (* = all); stored hashed, shown once",
  },
  { name: "pool", about: "the warm pool per key: ready vs target, starting, claimed, hit ratio" },
  {
    name: "infra up",
    args: "[--cluster N]",
    about: "start NATS (JetStream; --cluster N: N nodes on loopback) and the store in the background; print their URLs",
  },
  { name: "infra down", about: "stop what 'infra up' started" },
  { name: "infra status", about: "show whether they run and answer" },
  { name: "infra env", about: 'print shell exports for them: eval "$(./fleet infra env)"' },
  {
    name: "test",
    args: "[args]",
    about: "build the test servers if needed, then run the test suite (args go to vitest)",
  },
  { name: "help", about: "this text" },
] as const satisfies ReadonlyArray<{ name: string; args?: string; about: string }>;

export type CommandName = (typeof COMMANDS)[number]["name"];
