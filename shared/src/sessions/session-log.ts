import type { Bus } from "../bus/index.js";
import {
  LIMITS,
  LOG_SCHEMA_VERSION,
  lastSeqOf,
  type LogEntry,
  type LogLine,
  type SessionLog,
} from "../contracts/index.js";
import type { Logger } from "../log/index.js";
import type { SessionStore } from "../store/index.js";

export interface NewLine {
  kind: LogLine["kind"];
  line: string;
  /** Identity of what the line reports; a line whose key was written before is skipped. */
  key?: string;
}

export interface SessionLogDeps {
  store: SessionStore;
  bus: Bus;
  logger: Logger;
}

/** Every line one session may have, and a little more: the stream keeps twice that per session. */
const MAX_SCAN = 2 * LIMITS.logLinesPerSession;

/**
 * The writer of one session's log lines: sequence numbers 1, 2, 3… with no gap, the lines of one
 * write published to the log stream as one message (or a few, past `LIMITS.logLinesPerMessage`),
 * acknowledged by JetStream and deduplicated on its Nats-Msg-Id `log:<id>:<first seq>`; the
 * archiver stores them afterwards. Opened by whichever stage owns the session; a writer opened
 * after a crash continues from the stream: its last line's seq and the keys of its lines.
 */
export class SessionLogWriter {
  /** Lines waiting for the next write, with the callers waiting for them. */
  private pending: Array<{ lines: readonly NewLine[]; done: () => void; failed: (err: unknown) => void }> = [];
  private writing = false;
  /** The messages of a write that failed: any of them may be in the stream. The next write settles them first. */
  private unconfirmed: SessionLog[] = [];

  private constructor(
    private readonly deps: SessionLogDeps,
    readonly sessionId: string,
    private lastSeq: number,
    private readonly keys: Set<string>,
  ) {}

  /**
   * `fresh`: the caller knows no writer ever wrote for this session (its first setup), so neither
   * the stream nor the store is asked for its lines. `after`: the caller knows the last line written
   * (by a writer whose keys it never writes) and that no one else writes; it continues after it.
   */
  static async open(
    deps: SessionLogDeps,
    sessionId: string,
    options: { fresh?: boolean; after?: number } = {},
  ): Promise<SessionLogWriter> {
    if (options.fresh) return new SessionLogWriter(deps, sessionId, 0, new Set());
    if (options.after !== undefined) return new SessionLogWriter(deps, sessionId, options.after, new Set());
    let lines: Array<Pick<LogLine, "seq" | "key">> = await deps.bus.readLogs(sessionId, { limit: MAX_SCAN });
    // Nothing in the stream: a new session, or (past the stream's retention, or after the stream lost
    // its data) one whose lines only the store has. Continue after those rather than reuse their seqs.
    if (lines.length === 0 && (await deps.store.lastLogSeq(sessionId)) > 0)
      lines = await deps.store.logs(sessionId, { limit: MAX_SCAN });
    const writer = new SessionLogWriter(
      deps,
      sessionId,
      lines.at(-1)?.seq ?? 0,
      new Set(lines.flatMap((l) => (l.key ? [l.key] : []))),
    );
    await writer.fillGaps(lines.map((l) => l.seq));
    return writer;
  }

  get seq(): number {
    return this.lastSeq;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /**
   * Appends in call order; resolves once the lines are in the stream. Appends made in the same turn
   * of the event loop, or while a write is in flight, go out together in the next message.
   */
  append(lines: readonly NewLine[]): Promise<void> {
    return new Promise<void>((done, failed) => {
      this.pending.push({ lines, done, failed });
      if (!this.writing) {
        this.writing = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.write(batch.flatMap((b) => b.lines));
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.failed(err);
      }
    }
    this.writing = false;
  }

  private async write(lines: readonly NewLine[]): Promise<void> {
    if (this.unconfirmed.length > 0) await this.settle();
    // A key seen before, or earlier in this batch, is skipped.
    const seen = new Set<string>();
    let fresh = lines.filter((l) => {
      if (!l.key) return true;
      if (this.keys.has(l.key) || seen.has(l.key)) return false;
      seen.add(l.key);
      return true;
    });
    // One session cannot flood the stream or the store: past the cap, one marker and then nothing.
    const room = LIMITS.logLinesPerSession - this.lastSeq;
    if (room <= 0) return;
    if (fresh.length >= room) {
      fresh = [
        ...fresh.slice(0, room - 1),
        {
          kind: "system",
          line: `[log truncated: more than ${LIMITS.logLinesPerSession} lines; the rest is not kept]`,
          key: "log:truncated",
        },
      ];
    }
    if (fresh.length === 0) return;
    const entries: LogEntry[] = fresh.map((l) => ({
      kind: l.kind,
      line: l.line.length > LIMITS.logLineChars ? `${l.line.slice(0, LIMITS.logLineChars - 12)} [truncated]` : l.line,
      ...(l.key ? { key: l.key } : {}),
    }));
    const messages = this.messages(this.lastSeq + 1, entries);
    try {
      // Published together: one connection keeps their order, so the stream holds them in seq order.
      await Promise.all(messages.map((m) => this.deps.bus.publish("log", m)));
    } catch (err) {
      this.unconfirmed = messages;
      throw err;
    }
    this.confirm(messages);
  }

  /** Consecutive lines from `seq` as messages within the per-message limits of lines and characters. */
  private messages(seq: number, entries: readonly LogEntry[]): SessionLog[] {
    const at = Date.now();
    const out: SessionLog[] = [];
    let lines: LogEntry[] = [];
    let chars = 0;
    for (const e of entries) {
      const size = e.line.length + (e.key?.length ?? 0);
      if (lines.length >= LIMITS.logLinesPerMessage || (lines.length > 0 && chars + size > LIMITS.logCharsPerMessage)) {
        out.push({ v: LOG_SCHEMA_VERSION, sessionId: this.sessionId, seq, at, lines });
        seq += lines.length;
        lines = [];
        chars = 0;
      }
      lines.push(e);
      chars += size;
    }
    if (lines.length > 0) out.push({ v: LOG_SCHEMA_VERSION, sessionId: this.sessionId, seq, at, lines });
    return out;
  }

  private confirm(messages: readonly SessionLog[]): void {
    for (const m of messages) for (const l of m.lines) if (l.key) this.keys.add(l.key);
    const last = messages.at(-1);
    if (last) this.lastSeq = Math.max(this.lastSeq, lastSeqOf(last));
  }

  /**
   * After a failed write some of its messages may be in the stream and others not (the ones after a
   * failed one may have landed). What the stream lacks is published again under the same ids, so
   * each line is there once and the seqs have no gap; its callers were told it failed and write
   * again what they still need, which the keys then skip.
   */
  private async settle(): Promise<void> {
    const there = new Set(
      (await this.deps.bus.readLogs(this.sessionId, { afterSeq: this.lastSeq, limit: MAX_SCAN })).map((l) => l.seq),
    );
    await Promise.all(this.unconfirmed.filter((m) => !there.has(m.seq)).map((m) => this.deps.bus.publish("log", m)));
    this.confirm(this.unconfirmed);
    this.unconfirmed = [];
  }

  /**
   * A writer that crashed between a failed write and settling it leaves a gap below its last line.
   * Readers wait for gaps to close, so each is closed with lines saying what happened.
   */
  private async fillGaps(seqs: readonly number[]): Promise<void> {
    const present = new Set(seqs);
    const missing: SessionLog[] = [];
    const lost: LogEntry = { kind: "system", line: "[line lost: its writer stopped before the stream confirmed it]" };
    for (let seq = (seqs[0] ?? 1) + 1; seq < this.lastSeq; seq++) {
      if (present.has(seq)) continue;
      let run = 1;
      while (seq + run < this.lastSeq && !present.has(seq + run)) run++;
      missing.push(
        ...this.messages(
          seq,
          Array.from({ length: run }, () => lost),
        ),
      );
      seq += run;
    }
    if (missing.length === 0) return;
    this.deps.logger.warn(
      { sessionId: this.sessionId, missing: missing.flatMap((m) => m.lines.map((_, i) => m.seq + i)) },
      "closing gaps in the session's log",
    );
    await Promise.all(missing.map((m) => this.deps.bus.publish("log", m)));
  }
}
