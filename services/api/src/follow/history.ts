import { readLog, type Bus, type LogLine, type Session, type SessionStore } from "@fleet/shared";
import type { Gate } from "./gate.js";

/**
 * What followers read: one read for every follower that asks the same at the same time (a crowd
 * opening one session's stream costs one read of the session and one of its lines). Lines come from
 * the log stream; the store is read (through the gate) only for lines the stream no longer holds.
 */
export class History {
  private readonly inFlight = new Map<string, Promise<LogLine[]>>();
  private readonly sessions = new Map<string, Promise<Session | null>>();
  private readonly sources: Parameters<typeof readLog>[0];

  constructor(
    private readonly store: SessionStore,
    bus: Bus,
    gate: Gate,
  ) {
    this.sources = {
      bus,
      store: {
        logs: (id, options) => gate.run(() => store.logs(id, options)),
        lastLogSeq: (id) => gate.run(() => store.lastLogSeq(id)),
      },
    };
  }

  /** `complete`: every line up to the stream's last, or an error (see readLog). */
  after(sessionId: string, afterSeq: number, complete = false): Promise<LogLine[]> {
    const key = `${sessionId}\0${afterSeq}\0${complete}`;
    let read = this.inFlight.get(key);
    if (!read) {
      read = readLog(this.sources, sessionId, { afterSeq, limit: 10_000, complete }).finally(() =>
        this.inFlight.delete(key),
      );
      this.inFlight.set(key, read);
    }
    return read;
  }

  /** The session as the store has it (a read already under way will do: it is at most one round trip older). */
  session(id: string): Promise<Session | null> {
    let read = this.sessions.get(id);
    if (!read) {
      read = this.store.get(id).finally(() => this.sessions.delete(id));
      this.sessions.set(id, read);
    }
    return read;
  }
}
