import { constants } from "node:fs";
import { type FileHandle, open, readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { oldestFirst } from "@fleet/shared/sandbox";

/**
 * The on-disk record of one simulated sandbox, for benchmarks only. Every fleet process on the host
 * (spawner, poller, watchdog, api) and the benchmark itself read the same files, so a sandbox one
 * process created is visible to all of them.
 *
 * Layout under the state directory:
 *   live/<id>.jsonl    a sandbox that is alive
 *   ended/<id>.jsonl   a killed one, kept so a benchmark can read its timings after the run
 *
 * Each file is a short journal of JSON lines: `created` (written once, by create), then at most a
 * few appended lines (`prompted`, `aborted`, `killed`). Appends never create a file, so a late
 * prompt cannot bring a killed sandbox back, and a reader never sees a half-rewritten record: at
 * worst it misses an unfinished last line. A kill is one rename from live/ to ended/.
 */

export const SIM_ID = /^sim-[0-9a-f]{16}$/;

const CreatedLine = z.object({
  type: z.literal("created"),
  v: z.literal(1),
  id: z.string().regex(SIM_ID),
  createdAt: z.number(),
  endAt: z.number(),
  metadata: z.record(z.string(), z.string()),
  /** The scripted agent's run: how many tool events, how far apart. Fixed when the sandbox is made. */
  events: z.number().int().min(0),
  eventMs: z.number().int().min(0),
});
export type CreatedLine = z.infer<typeof CreatedLine>;

/** `timeout`: the hard timeout was set again (to `endAt`); `expired`: it lapsed, and the sandbox ended. */
const MarkLine = z.object({
  type: z.enum(["prompted", "aborted", "killed", "timeout", "expired"]),
  at: z.number(),
  endAt: z.number().optional(),
});
type MarkLine = z.infer<typeof MarkLine>;

export interface SimulatedState {
  id: string;
  createdAt: number;
  /** When the sandbox's own hard timeout ends it. */
  endAt: number;
  metadata: Record<string, string>;
  events: number;
  eventMs: number;
  /** When the (first) prompt reached the simulated agent: its scripted run starts here. */
  promptedAt?: number;
  /** When the agent session was aborted (only counted when it came after the prompt). */
  abortedAt?: number;
  killedAt?: number;
  /** When its hard timeout ended it (killed by the provider, not by anyone's kill). */
  expiredAt?: number;
  /** Times its timeout was set again after the create. */
  extensions: number;
  /** False once killed. */
  alive: boolean;
}

export function livePath(dir: string, id: string): string {
  return join(dir, "live", `${id}.jsonl`);
}

export function endedPath(dir: string, id: string): string {
  return join(dir, "ended", `${id}.jsonl`);
}

export function createdLine(line: Omit<CreatedLine, "type" | "v">): string {
  const record: CreatedLine = { type: "created", v: 1, ...line };
  return `${JSON.stringify(record)}\n`;
}

/**
 * Appends a mark to an existing journal; false when the file is not there (killed, or never
 * made). One open without O_CREAT and one small append.
 */
export async function appendMark(
  path: string,
  type: MarkLine["type"],
  at: number,
  extra: { endAt?: number } = {},
): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_APPEND);
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
  try {
    const mark: MarkLine = { type, at, ...extra };
    await fh.write(`${JSON.stringify(mark)}\n`);
    return true;
  } finally {
    await fh.close();
  }
}

/** The journal's complete lines folded into one state; throws when the first line is not a valid `created`. */
export function parseJournal(text: string, alive: boolean): SimulatedState {
  // A line without its newline is still being written: it is left for the next read.
  const lines = text
    .split("\n")
    .slice(0, -1)
    .filter((l) => l.length > 0);
  const created = CreatedLine.parse(JSON.parse(lines[0] ?? "null"));
  const state: SimulatedState = {
    id: created.id,
    createdAt: created.createdAt,
    endAt: created.endAt,
    metadata: created.metadata,
    events: created.events,
    eventMs: created.eventMs,
    extensions: 0,
    alive,
  };
  for (const raw of lines.slice(1)) {
    const mark = MarkLine.parse(JSON.parse(raw));
    if (mark.type === "prompted") state.promptedAt ??= mark.at;
    else if (mark.type === "aborted") {
      if (state.promptedAt !== undefined && mark.at >= state.promptedAt) state.abortedAt ??= mark.at;
    } else if (mark.type === "timeout") {
      if (mark.endAt !== undefined) state.endAt = mark.endAt;
      state.extensions++;
    } else if (mark.type === "expired") state.expiredAt ??= mark.at;
    else state.killedAt ??= mark.at;
  }
  return state;
}

/**
 * Whether a sandbox is alive, ending it first if its hard timeout has passed, as a provider's own
 * clock would: its journal moves to ended/ with an `expired` mark. `lapsed` only for the call that
 * ended it or found it past its time.
 */
export async function liveness(dir: string, id: string, now = Date.now()): Promise<"alive" | "gone" | "lapsed"> {
  let text: string;
  try {
    text = await readFile(livePath(dir, id), "utf8");
  } catch (err) {
    if (isMissing(err)) return "gone";
    throw err;
  }
  if (parseJournal(text, true).endAt > now) return "alive";
  try {
    await rename(livePath(dir, id), endedPath(dir, id));
  } catch (err) {
    if (isMissing(err)) return "gone";
    throw err;
  }
  await appendMark(endedPath(dir, id), "expired", now).catch(() => undefined);
  return "lapsed";
}

/** A sandbox's state, alive or ended; null when the directory never had it. */
export async function readSimulatedState(dir: string, id: string): Promise<SimulatedState | null> {
  if (!SIM_ID.test(id)) return null;
  for (const [path, alive] of [
    [livePath(dir, id), true],
    [endedPath(dir, id), false],
  ] as const) {
    const text = await readFile(path, "utf8").catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (text !== undefined) return parseJournal(text, alive);
  }
  return null;
}

/**
 * Every sandbox the directory has seen (alive and ended), for a benchmark's report. Reads are
 * bounded in parallel; a journal that cannot be parsed is reported in `unreadable`.
 */
export async function readAllSimulatedStates(dir: string): Promise<{ states: SimulatedState[]; unreadable: string[] }> {
  const states: SimulatedState[] = [];
  const unreadable: string[] = [];
  for (const alive of [true, false]) {
    const folder = join(dir, alive ? "live" : "ended");
    const names = await listJournals(folder);
    await forEachBounded(names, 64, async (name) => {
      try {
        const text = await readFile(join(folder, name), "utf8");
        states.push(parseJournal(text, alive));
      } catch (err) {
        // A live journal may move to ended/ between the listing and the read; it is read there.
        if (!isMissing(err)) unreadable.push(join(folder, name));
      }
    });
  }
  // A kill racing the scan could list one sandbox twice: the ended record is the later truth.
  const byId = new Map<string, SimulatedState>();
  for (const s of states) if (!byId.has(s.id) || !s.alive) byId.set(s.id, s);
  // The provider's list() order (oldest first, ties by id), so a report reads the same every run.
  return {
    states: [...byId.values()].sort((a, b) =>
      oldestFirst({ id: a.id, startedAt: a.createdAt }, { id: b.id, startedAt: b.createdAt }),
    ),
    unreadable,
  };
}

/**
 * When the simulated agent went idle (finished its script, or was aborted): deterministic, the
 * prompt time plus `events × eventMs`, or the abort time when that came first. Undefined until the
 * sandbox was prompted. A benchmark compares it with the session's completedAt to measure how long
 * the fleet took to notice and record the end.
 */
export function simulatedIdleAt(
  state: Pick<SimulatedState, "promptedAt" | "abortedAt" | "events" | "eventMs">,
): number | undefined {
  if (state.promptedAt === undefined) return undefined;
  const scripted = state.promptedAt + state.events * state.eventMs;
  return state.abortedAt !== undefined && state.abortedAt < scripted ? state.abortedAt : scripted;
}

export async function listJournals(folder: string): Promise<string[]> {
  const names = await readdir(folder).catch((err: unknown) => {
    if (isMissing(err)) return [];
    throw err;
  });
  return names.filter((n) => n.endsWith(".jsonl") && SIM_ID.test(n.slice(0, -".jsonl".length)));
}

export async function forEachBounded<T>(
  items: readonly T[],
  width: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

export function isMissing(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ENOENT";
}
