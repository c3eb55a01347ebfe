import type { Bus } from "../bus/index.js";
import { FleetError } from "../errors/index.js";
import type { LogLine } from "../contracts/index.js";
import type { SessionStore } from "../store/index.js";

export interface LogReadDeps {
  bus: Pick<Bus, "readLogs" | "lastLogSeq">;
  store: Pick<SessionStore, "logs" | "lastLogSeq">;
}

/**
 * A session's lines after `afterSeq`, gap-free and each once, at most `limit`. The stream first: it
 * holds every line not yet archived, and every line of the last days. The store only for what the
 * stream no longer holds (older than its retention), or for everything while the bus is away: then
 * the answer is what is archived, and the client asks again from its last seq for the rest.
 */
export async function readLog(
  deps: LogReadDeps,
  sessionId: string,
  options: { afterSeq?: number; limit?: number; complete?: boolean } = {},
): Promise<LogLine[]> {
  const afterSeq = options.afterSeq ?? 0;
  const limit = options.limit ?? 1_000;
  // `complete`: the caller ends a log with this read (a follower's end event), so an answer from the
  // store alone while the bus is away, or a stream read cut short, is an error, not the whole log.
  const streamed = await deps.bus
    .readLogs(sessionId, { afterSeq, limit })
    .catch((err: unknown) => (options.complete ? Promise.reject(err) : ([] as LogLine[])));
  const first = streamed[0]?.seq;
  let stored: LogLine[] = [];
  if (first !== afterSeq + 1) {
    // Up to the stream's first line, or everything the store has when the stream has none.
    stored = await deps.store.logs(sessionId, {
      afterSeq,
      limit: first === undefined ? limit : Math.min(limit, first - afterSeq - 1),
    });
  }
  const out: LogLine[] = [];
  for (const l of [...stored, ...streamed]) {
    // Gap-free: a reader resumes from the last seq it got, so a line after a gap would hide the gap for good.
    if (l.seq !== afterSeq + out.length + 1) break;
    out.push(l);
    if (out.length >= limit) break;
  }
  if (options.complete && out.length < limit) {
    const last = await deps.bus.lastLogSeq(sessionId);
    if (last > afterSeq + out.length)
      throw new FleetError(
        "bus_unavailable",
        `the log of ${sessionId} was read to seq ${afterSeq + out.length} of ${last}; ask again`,
        { retryable: true },
      );
  }
  return out;
}

/** The seq of a session's last line: the stream's, or the store's once the stream no longer holds the session. */
export async function lastLogSeqOf(deps: LogReadDeps, sessionId: string): Promise<number> {
  const streamed = await deps.bus.lastLogSeq(sessionId).catch(() => 0);
  return streamed > 0 ? streamed : deps.store.lastLogSeq(sessionId);
}
