import { getEventListeners } from "node:events";
import {
  errorMessage,
  isTerminal,
  type Bus,
  type LogLine,
  type Logger,
  type SessionStatus,
  type SessionStore,
} from "@fleet/shared";
import type { Gate } from "./gate.js";

export type EndStatus = SessionStatus | "unknown";
type Line = Pick<LogLine, "seq" | "at" | "kind" | "line">;

/** One open log stream, as the hub sees it. */
export interface Follower {
  line(l: Line): void;
  /** The session ended (or its document is gone). */
  end(status: EndStatus): void;
  /** The process is shutting down: stop without an end event, so the client resumes elsewhere. */
  close(): void;
}

interface Feed {
  readonly ctrl: AbortController;
  done: boolean;
  stopping: boolean;
}

interface Watched {
  readonly followers: Set<Follower>;
  feed?: Feed;
}

export interface LogHubDeps {
  bus: Bus;
  store: SessionStore;
  gate: Gate;
  logger: Logger;
  /** How often the sessions followed are checked for their end. */
  endCheckMs: number;
}

/**
 * The live side of every log stream of this process: one bus follow per followed session (however
 * many follow it), stopped when its last follower leaves or the session ends, and one sweep that
 * checks the followed sessions for their end, instead of a follow and a poll per stream.
 */
export class LogHub {
  private readonly watched = new Map<string, Watched>();
  private sweep: NodeJS.Timeout | undefined;
  private feeds = 0;
  private closed = false;

  constructor(private readonly deps: LogHubDeps) {}

  /** Bus follows running now (a stopped one counts until it has really ended). */
  get liveFeeds(): number {
    return this.feeds;
  }

  /** Starts telling `follower` the session's live lines and its end; the function returned stops it. */
  watch(sessionId: string, follower: Follower): () => void {
    if (this.closed) {
      follower.close();
      return () => undefined;
    }
    let w = this.watched.get(sessionId);
    if (!w) {
      w = { followers: new Set() };
      this.watched.set(sessionId, w);
    }
    w.followers.add(follower);
    if (!w.feed) this.startFeed(sessionId, w);
    this.sweep ??= setTimeout(() => void this.checkEnds(), this.deps.endCheckMs).unref();
    const watched = w;
    return () => {
      if (!watched.followers.delete(follower) || watched.followers.size > 0) return;
      if (this.watched.get(sessionId) === watched) this.watched.delete(sessionId);
      if (watched.feed) stopFeed(watched.feed);
    };
  }

  /** Ends every stream without an end event and stops every follow (shutdown). */
  close(): void {
    this.closed = true;
    clearTimeout(this.sweep);
    for (const [id, w] of this.watched) this.finish(id, w, (f) => f.close());
  }

  private finish(sessionId: string, w: Watched, tell: (f: Follower) => void): void {
    if (this.watched.get(sessionId) === w) this.watched.delete(sessionId);
    if (w.feed) stopFeed(w.feed);
    for (const f of [...w.followers]) tell(f);
    w.followers.clear();
  }

  private startFeed(sessionId: string, w: Watched): void {
    const feed: Feed = { ctrl: new AbortController(), done: false, stopping: false };
    w.feed = feed;
    this.feeds++;
    void (async () => {
      try {
        for await (const l of this.deps.bus.followLogs(sessionId, feed.ctrl.signal)) {
          if (feed.stopping) break;
          for (const f of w.followers) f.line(l);
        }
      } catch (err) {
        // Followers catch up from history on the next line or at the end; the follow restarts below.
        this.deps.logger.debug({ sessionId, err: errorMessage(err) }, "log follow failed");
      } finally {
        feed.done = true;
        this.feeds--;
        if (w.feed === feed) delete w.feed;
        if (!feed.stopping && !this.closed) setTimeout(() => this.restart(sessionId, w), 1_000).unref();
      }
    })();
  }

  private restart(sessionId: string, w: Watched): void {
    if (!this.closed && !w.feed && w.followers.size > 0 && this.watched.get(sessionId) === w)
      this.startFeed(sessionId, w);
  }

  /** One pass over the followed sessions (their reads through the gate, so one at a time), then the next. */
  private async checkEnds(): Promise<void> {
    await Promise.all(
      [...this.watched].map(([id, w]) =>
        this.deps.gate
          .run(() => this.deps.store.get(id))
          .then((s) => {
            if (!s || isTerminal(s.status)) this.finish(id, w, (f) => f.end(s?.status ?? "unknown"));
          })
          .catch((err: unknown) =>
            this.deps.logger.debug({ sessionId: id, err: errorMessage(err) }, "end check failed"),
          ),
      ),
    );
    this.sweep =
      this.watched.size > 0 && !this.closed
        ? setTimeout(() => void this.checkEnds(), this.deps.endCheckMs).unref()
        : undefined;
  }
}

/**
 * Stops a bus follow. Bus.followLogs (shared/src/bus/logs.ts) starts listening to its signal
 * only once its consumer exists and does not look at `aborted` again, so an abort during its setup
 * is never seen and the consumer is pulled for ever: abort once it listens (or the follow ended).
 */
function stopFeed(feed: Feed, waitedMs = 0): void {
  feed.stopping = true;
  if (feed.done || feed.ctrl.signal.aborted) return;
  if (getEventListeners(feed.ctrl.signal, "abort").length > 0 || waitedMs >= 30_000) {
    feed.ctrl.abort();
    return;
  }
  setTimeout(() => stopFeed(feed, waitedMs + 10), 10).unref();
}
