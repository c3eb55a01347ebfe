import type { Bus } from "../bus/index.js";
import { LIMITS, SCHEMA_VERSION, type LogLine } from "../contracts/index.js";
import { errorMessage } from "../errors/index.js";
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

const MAX_STORED_SCAN = 10_000;

/**
 * The writer of one session's log lines: sequence numbers 1, 2, 3… with no gap, each line stored
 * (idempotent on sessionId+seq) before it is published (deduplicated on its Nats-Msg-Id). Opened by
 * whichever stage owns the session; a writer opened after a crash continues from the stored lines.
 */
export class SessionLogWriter {
  /** Lines waiting for the next write, with the callers waiting for them. */
  private pending: Array<{ lines: readonly NewLine[]; done: () => void; failed: (err: unknown) => void }> = [];
  private writing = false;
  private unsure = false;

  private constructor(
    private readonly deps: SessionLogDeps,
    readonly sessionId: string,
    private lastSeq: number,
    private readonly keys: Set<string>,
  ) {}

  static async open(deps: SessionLogDeps, sessionId: string): Promise<SessionLogWriter> {
    const stored = await deps.store.logs(sessionId, { limit: MAX_STORED_SCAN });
    const keys = new Set(stored.flatMap((l) => (l.key ? [l.key] : [])));
    const last = stored.at(-1)?.seq ?? 0;
    const writer = new SessionLogWriter(deps, sessionId, last, keys);
    // The previous owner may have stored its last lines without publishing them: publish exactly
    // those, so a plain subscriber sees every line once.
    const published = await deps.bus.lastLogSeq(sessionId);
    await writer.publish(stored.filter((l) => l.seq > published));
    return writer;
  }

  get seq(): number {
    return this.lastSeq;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /**
   * Appends in call order; resolves once the lines are stored. Appends made while a write is in
   * flight go out together in the next one (one insertMany, one round of publishes), so a busy
   * session costs the store a write per batch, not per line.
   */
  append(lines: readonly NewLine[]): Promise<void> {
    return new Promise<void>((done, failed) => {
      this.pending.push({ lines, done, failed });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
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
    if (this.unsure) await this.resync();
    // A key seen before, or earlier in this batch, is skipped.
    const seen = new Set<string>();
    let fresh = lines.filter((l) => {
      if (!l.key) return true;
      if (this.keys.has(l.key) || seen.has(l.key)) return false;
      seen.add(l.key);
      return true;
    });
    // One session cannot flood the store or the stream: past the cap, one marker and then nothing.
    const room = LIMITS.logLinesPerSession - this.lastSeq;
    if (room <= 0) return;
    if (fresh.length >= room) {
      fresh = [...fresh.slice(0, room - 1), { kind: "system", line: `[log truncated: more than ${LIMITS.logLinesPerSession} lines; the rest is not kept]`, key: "log:truncated" }];
    }
    if (fresh.length === 0) return;
    const at = Date.now();
    const docs: LogLine[] = fresh.map((l, i) => ({
      sessionId: this.sessionId,
      seq: this.lastSeq + i + 1,
      at,
      kind: l.kind,
      line: l.line.length > LIMITS.logLineChars ? `${l.line.slice(0, LIMITS.logLineChars - 12)} [truncated]` : l.line,
      ...(l.key ? { key: l.key } : {}),
    }));
    try {
      await this.deps.store.appendLogs(docs);
    } catch (err) {
      // The write may or may not have landed: read the store again before the next one.
      this.unsure = true;
      throw err;
    }
    this.lastSeq += docs.length;
    for (const l of fresh) if (l.key) this.keys.add(l.key);
    await this.publish(docs);
  }

  private async resync(): Promise<void> {
    const stored = await this.deps.store.logs(this.sessionId, { afterSeq: this.lastSeq, limit: MAX_STORED_SCAN });
    for (const l of stored) if (l.key) this.keys.add(l.key);
    this.lastSeq = stored.at(-1)?.seq ?? this.lastSeq;
    this.unsure = false;
    await this.publish(stored);
  }

  private async publish(docs: readonly LogLine[]): Promise<void> {
    // Stored lines are the record; a line that fails to publish is still served from the store.
    await Promise.all(
      docs.map((d) =>
        this.deps.bus
          .publish("log", { v: SCHEMA_VERSION, sessionId: d.sessionId, seq: d.seq, at: d.at, kind: d.kind, line: d.line, ...(d.key ? { key: d.key } : {}) })
          .catch((err: unknown) => this.deps.logger.warn({ sessionId: d.sessionId, seq: d.seq, err: errorMessage(err) }, "log line not published")),
      ),
    );
  }
}
