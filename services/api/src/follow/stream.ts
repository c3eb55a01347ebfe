import type { ServerResponse } from "node:http";
import { isTerminal, type LogLine, type Session } from "@fleet/shared";
import type { History } from "./history.js";
import type { EndStatus, LogHub } from "./hub.js";

export interface StreamDeps {
  history: History;
  hub: LogHub;
  /** Comment lines that keep proxies from closing a quiet stream. */
  keepAliveMs?: number;
}

/** A client that does not read what it is sent is dropped past this much, and resumes with Last-Event-ID. */
const MAX_BUFFERED_BYTES = 1 << 20;

const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};

/**
 * Serves one log stream: history (from the log stream, and from the store for lines older than the
 * stream keeps), then live lines from the hub, then an `end` event once the session has ended and
 * every line is out. Resolves when the answer is over,
 * whichever side ended it; nothing of it is left running then.
 */
export async function streamLogs(
  deps: StreamDeps,
  session: Session,
  after: number,
  res: ServerResponse,
): Promise<void> {
  const closed = new Promise<void>((resolve) => res.once("close", resolve));
  // The client may have gone while the session was read: there is nobody to serve.
  if (res.closed || res.destroyed || !res.socket || res.socket.destroyed) return;
  res.writeHead(200, SSE_HEADERS);
  // Sent at once: a session with no lines yet would otherwise leave the client without even the
  // status line until the first keep-alive, and clients time out waiting for it.
  res.flushHeaders();

  // Nothing is written once the answer is over: a write after the end would be an 'error' event.
  const open = (): boolean => !res.writableEnded && !res.destroyed;
  let last = after;
  const send = (l: Pick<LogLine, "seq" | "at" | "kind" | "line">): void => {
    // Lines come from two sources (history and the hub); one out of order is read again as history.
    if (l.seq !== last + 1 || !open()) return;
    last = l.seq;
    res.write(
      `id: ${l.seq}\nevent: log\ndata: ${JSON.stringify({ seq: l.seq, at: l.at, kind: l.kind, line: l.line })}\n\n`,
    );
    if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
  };
  const catchUp = async (complete = false): Promise<void> => {
    if (!open()) return;
    for (const l of await deps.history.after(session.id, last, complete)) send(l);
  };
  const finish = async (status: EndStatus): Promise<void> => {
    // The end event says the log is whole: sent only after a read that reached the stream's last
    // line. Otherwise (the bus away, an election) the answer is dropped and the client resumes.
    await catchUp(true);
    if (!open()) return;
    res.write(`event: end\ndata: ${JSON.stringify({ status, lastSeq: last })}\n\n`);
    res.end();
  };

  // One step at a time, in arrival order; a failed history read drops the stream (the client resumes).
  let chain = Promise.resolve();
  const step = (work: () => Promise<void> | void): void => {
    chain = chain.then(work).catch(() => void res.destroy());
  };

  let unwatch = (): void => undefined;
  if (isTerminal(session.status)) {
    step(() => finish(session.status));
  } else {
    unwatch = deps.hub.watch(session.id, {
      line: (l) =>
        step(async () => {
          if (l.seq > last + 1) await catchUp();
          send(l);
        }),
      end: (status) => step(() => finish(status)),
      close: () => step(() => void (open() && res.end())),
    });
    step(catchUp);
  }
  const keepAlive = setInterval(() => open() && res.write(": keep-alive\n\n"), deps.keepAliveMs ?? 15_000);
  try {
    await closed;
  } finally {
    clearInterval(keepAlive);
    unwatch();
  }
}
