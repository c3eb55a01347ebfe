import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { LogLine, LogLineStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`log lines on a real ${inject("storeKind")}`, () => {
  const lines: LogLineStore & { close(): Promise<void> } = useStore("loglines");

  it("stores a replayed log line once and reads lines in order after a sequence", async () => {
    const line = (seq: number): LogLine => ({
      sessionId: "s-log",
      seq,
      at: 1_000 + seq,
      kind: "tool",
      line: `line ${seq}`,
    });
    expect(await lines.appendLogs([line(1), line(2), line(3)])).toEqual({ inserted: 3 });
    // A poller that crashed after storing 2 and 3 replays 2..5: only 4 and 5 are new.
    expect(await lines.appendLogs([line(2), line(4), line(3), line(5)])).toEqual({ inserted: 2 });
    expect(await lines.appendLogs([line(5)])).toEqual({ inserted: 0 });
    expect(await lines.appendLogs([])).toEqual({ inserted: 0 });
    const all = await lines.logs("s-log");
    expect(all.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await lines.logs("s-log", { afterSeq: 3 })).map((l) => l.line)).toEqual(["line 4", "line 5"]);
    expect(await lines.lastLogSeq("s-log")).toBe(5);
    expect(await lines.lastLogSeq("nobody")).toBe(0);
  });

  it("reads any run of log lines whole and in order, short ones by key and long ones by query", async () => {
    const line = (sessionId: string, seq: number): LogLine => ({
      sessionId,
      seq,
      at: seq,
      kind: "system",
      line: `${sessionId} ${seq}`,
    });
    // Lengths around the key-read rounds (1, then 3, then 12 lines) and past them (the query).
    for (const n of [0, 1, 2, 4, 5, 16, 17, 40]) {
      const id = `s-run-${n}`;
      await lines.appendLogs(Array.from({ length: n }, (_, i) => line(id, i + 1)));
      expect((await lines.logs(id)).map((l) => l.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(await lines.lastLogSeq(id)).toBe(n);
      for (const afterSeq of [1, 3, 15]) {
        const expected = Array.from({ length: Math.max(0, n - afterSeq) }, (_, i) => afterSeq + 1 + i);
        expect((await lines.logs(id, { afterSeq })).map((l) => l.seq)).toEqual(expected);
        expect((await lines.logs(id, { afterSeq, limit: 2 })).map((l) => l.seq)).toEqual(expected.slice(0, 2));
        expect((await lines.logs(id, { afterSeq, limit: 20 })).map((l) => l.seq)).toEqual(expected.slice(0, 20));
      }
    }
    // Another session's lines never leak in, whichever way they are read.
    expect((await lines.logs("s-run-40", { afterSeq: 39 })).map((l) => l.line)).toEqual(["s-run-40 40"]);
  });
});
