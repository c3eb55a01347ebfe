/**
 * The path of a session in one place. A session is `pending` while a spawner sets it up, `running`
 * while a poller watches its agent, then ends once, in one of three terminal statuses. The table
 * says, for each status, the statuses it is entered from (the store's compare-and-set), the phases
 * it shows, the stages that write it, and the event on the bus that announces it. The code reads
 * it: transitions take their `from` here, the terminal events their subject, the document schema
 * its statuses and phases.
 */
export const SESSION_STATUSES = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/** The finer steps; the last one stays on a terminal document. Each is a store write, so a step of milliseconds has none. */
export const SESSION_PHASES = ["queued", "sandbox_creating", "restoring", "server_starting", "running"] as const;
export type SessionPhaseName = (typeof SESSION_PHASES)[number];

export type StageName = "api" | "spawner" | "poller" | "watchdog";

export interface StatusSpec {
  /** Entered from these statuses only; none for the status a session is created in. */
  from: readonly SessionStatus[];
  /** Phases a session shows in this status (a terminal one keeps the phase it ended in). */
  phases: readonly SessionPhaseName[];
  /** Stages that write it, and why. */
  writers: Partial<Record<StageName, string>>;
  /** The bus event announcing it (the catalog's kind); none for `pending`, whose input is session.requested. */
  event?: "running" | "completed" | "failed" | "cancelled";
  terminal: boolean;
}

const ACTIVE = ["pending", "running"] as const satisfies readonly SessionStatus[];

export const LIFECYCLE = {
  pending: {
    from: [],
    phases: ["queued", "sandbox_creating", "restoring", "server_starting"],
    writers: {
      api: "creates the document of a submit before publishing it",
      spawner: "creates it for a request published on the bus; moves it through the setup phases",
    },
    terminal: false,
  },
  running: {
    from: ["pending"],
    phases: ["running"],
    writers: { spawner: "once the agent has the prompt" },
    event: "running",
    terminal: false,
  },
  completed: {
    from: ACTIVE,
    phases: [],
    writers: { poller: "the agent's last message finished", api: "the sandbox called back with its result" },
    event: "completed",
    terminal: true,
  },
  failed: {
    from: ACTIVE,
    phases: [],
    writers: {
      spawner: "setup failed for good",
      poller:
        "the agent failed, stalled, became unreachable or lost its sandbox; or the model gateway asked for its end (endRequested: budget_exceeded)",
      watchdog: "the deadline passed",
    },
    event: "failed",
    terminal: true,
  },
  cancelled: {
    from: ACTIVE,
    phases: [],
    writers: {
      watchdog: "a cancel request (session.cancel)",
      spawner: "a newer session of the same card superseded it",
    },
    event: "cancelled",
    terminal: true,
  },
} as const satisfies Record<SessionStatus, StatusSpec>;

export type TerminalStatus = {
  [S in SessionStatus]: (typeof LIFECYCLE)[S]["terminal"] extends true ? S : never;
}[SessionStatus];

/** The terminal statuses as a tuple (schemas need one); the compiler holds it to the table. */
export const TERMINAL_STATUSES = ["completed", "failed", "cancelled"] as const satisfies readonly TerminalStatus[];
export const ACTIVE_STATUSES = ACTIVE;
// Fails to compile if a status the table calls terminal is missing from TERMINAL_STATUSES, or an active one from ACTIVE.
const everyTerminalListed: Exclude<TerminalStatus, (typeof TERMINAL_STATUSES)[number]> extends never ? true : never =
  true;
const everyActiveListed: Exclude<Exclude<SessionStatus, TerminalStatus>, (typeof ACTIVE)[number]> extends never
  ? true
  : never = true;
void everyTerminalListed;
void everyActiveListed;

export function isTerminal(status: SessionStatus): status is TerminalStatus {
  return LIFECYCLE[status].terminal;
}
