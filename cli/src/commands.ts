/** Errors are told apart by name, so this module loads nothing of the fleet (help stays quick). */
type Named = { name?: unknown; code?: unknown; status?: unknown; message?: unknown };

/**
 * Every command of `./fleet` with its one-line description: the parser (cli/src/main.ts) takes its
 * descriptions from this list, and a suite check holds the README's command table to it
 * (test/cli.test.ts). Groups (`infra`, `keys`) are listed with each of their subcommands.
 */
export const COMMANDS = [
  { name: "demo", about: "start everything on the embedded defaults, run one session end to end, stop" },
  {
    name: "up",
    about:
      "start the infrastructure (--cluster 3: a three-node NATS cluster), the model (scripted unless FLEET_MODEL_URL), the model gateway and the services",
  },
  { name: "down", about: "stop what 'up' started" },
  { name: "submit", about: "submit a session (with -f, print its log live until it ends)" },
  { name: "logs", about: "a session's log lines (-f follows them live)" },
  { name: "ls", about: "a project's sessions, newest first" },
  { name: "show", about: "a session's state, result, model usage and setup breakdown" },
  { name: "cancel", about: "end a session in whatever phase it is" },
  { name: "keys create", about: "make an API key scoped to projects (* = all); stored hashed, shown once" },
  { name: "keys revoke", about: "revoke an API key" },
  { name: "keys ls", about: "list the API keys (never the keys themselves)" },
  { name: "pool", about: "the warm pool per key: ready vs target, starting, claimed, hit ratio" },
  {
    name: "infra up",
    about: "start NATS (JetStream; --cluster N: N nodes on loopback) and the store in the background; print their URLs",
  },
  { name: "infra down", about: "stop what 'infra up' started" },
  { name: "infra status", about: "show whether they run and answer" },
  { name: "infra env", about: 'print shell exports for them: eval "$(./fleet infra env)"' },
  { name: "test", about: "build the test servers if needed, then run the test suite (args go to vitest)" },
  { name: "completion", about: "print a shell completion script: ./fleet completion >> ~/.bashrc (or ~/.zshrc)" },
  { name: "help", about: "the commands and what they do" },
] as const satisfies ReadonlyArray<{ name: string; about: string }>;

export type CommandName = (typeof COMMANDS)[number]["name"];

const GROUPS = {
  keys: "API keys of the api: create, revoke, ls",
  infra: "the infrastructure alone (NATS and the store): up, down, status, env",
} as const;

export function about(name: CommandName | keyof typeof GROUPS): string {
  if (name in GROUPS) return GROUPS[name as keyof typeof GROUPS];
  return (COMMANDS.find((c) => c.name === name) as { about: string }).about;
}

/** The exit codes of every command (README, "What ./fleet does"). */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

export function exitCodeOf(err: unknown): number {
  const e = (err ?? {}) as Named;
  if (e.name === "FleetUnreachable") return EXIT.unreachable;
  if (e.name === "FleetError") {
    if (e.code === "bad_input") return EXIT.usage;
    if (e.code === "bus_unavailable" || e.code === "store_unavailable") return EXIT.unreachable;
  }
  return EXIT.failed;
}

/** What the api's refusals usually need from the user. */
const FIXES: Record<number, string> = {
  401: "set FLEET_API_KEY to a valid key (./fleet keys create --project P makes one)",
  403: "the key does not cover this project: use a key made for it",
  404: "check the id: ./fleet ls --project P lists a project's sessions",
  429: "too many requests at once: try again in a moment",
  503: "the fleet's bus or store is down: ./fleet infra status tells which",
};

/** An error as one line, with what to do about it where that is known; never a stack. */
export function oneLine(err: unknown): string {
  const text = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, "; ");
  const e = (err ?? {}) as Named;
  const fix = e.name === "FleetApiError" && typeof e.status === "number" ? FIXES[e.status] : undefined;
  if (fix) return `${text} (${fix})`;
  return text;
}
