import type { LogLine, Session, SessionStore } from "@fleet/shared";
import type { Gate } from "./gate.js";

/**
 * What followers read from the store: one read for every follower that asks the same at the same
 * time (a crowd opening one session's stream costs one read of the session and one of its lines),
 * and lines through the gate.
 */
export class History {
  private readonly inFlight = new Map<string, Promise<LogLine[]>>();
  private readonly sessions = new Map<string, Promise<Session | null>>();

  constructor(
    private readonly store: SessionStore,
    private readonly gate: Gate,
  ) {}

  after(sessionId: string, afterSeq: number): Promise<LogLine[]> {
    const key = `${sessionId}\0${afterSeq}`;
    let read = this.inFlight.get(key);
    if (!read) {
      read = this.gate.run(() => this.store.logs(sessionId, { afterSeq, limit: 10_000 })).finally(() => this.inFlight.delete(key));
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
