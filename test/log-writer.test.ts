import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FleetError,
  LIMITS,
  SessionLogWriter,
  type Bus,
  type LogLine,
  type MongoSessionStore,
} from "../shared/src/index.js";
import { cleanup, logger, openBus, openStore, uniqueNamespace } from "./support/fixtures.js";
import { logMessage, logMessages } from "./support/jetstream.js";

/** Every line the stream holds for a session, in stream order, read with a follow (ended once `n` came or after 3 s). */
async function streamed(bus: Bus, sessionId: string, n: number): Promise<LogLine[]> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 3_000);
  const out: LogLine[] = [];
  for await (const l of bus.followLogs(sessionId, stop.signal)) {
    out.push(l);
    if (out.length >= n) break;
  }
  clearTimeout(timer);
  return out;
}

describe("the log writer: lines go to the stream, a reopened writer continues from it", () => {
  const ns = uniqueNamespace("lw");
  let store: MongoSessionStore;
  let bus: Bus;

  beforeAll(async () => {
    store = await openStore(ns);
    bus = await openBus(ns, { store });
    await bus.provision();
  });

  afterAll(async () => {
    await bus.close();
    await store.close();
    await cleanup(ns, ns);
  });

  it("publishes the lines of a write as one message, with no store write on the way (no archiver runs here)", async () => {
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-pub");
    await writer.append([1, 2, 3].map((i) => ({ kind: "system" as const, line: `line ${i}` })));
    expect(writer.seq).toBe(3);
    expect((await streamed(bus, "s-pub", 3)).map((l) => [l.seq, l.line])).toEqual([
      [1, "line 1"],
      [2, "line 2"],
      [3, "line 3"],
    ]);
    expect(await logMessages(ns, "s-pub")).toBe(1);
    expect(await store.lastLogSeq("s-pub")).toBe(0);
  });

  it("sends appends of the same turn together, and splits a message at its limits of lines and characters", async () => {
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-split", { fresh: true });
    const n = 2 * LIMITS.logLinesPerMessage + 5;
    // One append per line, all in one turn of the event loop: three messages (64, 64, 5 lines).
    await Promise.all(Array.from({ length: n }, (_, i) => writer.append([{ kind: "tool", line: `l${i + 1}` }])));
    expect(writer.seq).toBe(n);
    expect(await logMessages(ns, "s-split")).toBe(3);
    // Long lines: a message holds at most logCharsPerMessage characters of them.
    const long = "x".repeat(LIMITS.logLineChars);
    const perMessage = Math.floor(LIMITS.logCharsPerMessage / LIMITS.logLineChars);
    await writer.append(Array.from({ length: perMessage + 1 }, () => ({ kind: "text" as const, line: long })));
    expect(await logMessages(ns, "s-split")).toBe(5);
    const lines = await streamed(bus, "s-split", n + perMessage + 1);
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: n + perMessage + 1 }, (_, i) => i + 1));
    expect(lines[n - 1]?.line).toBe(`l${n}`);
  });

  it("settles a write whose middle message failed: the next write publishes it again, each line once and no gap", async () => {
    let failing = true;
    // The real bus, with one publish refused: the second message of the write (lines 65 to 128).
    const flaky = new Proxy(bus, {
      get(target, prop) {
        if (prop === "publish")
          return (async (kind, msg, options) => {
            if (failing && kind === "log" && (msg as { seq: number }).seq === LIMITS.logLinesPerMessage + 1) {
              failing = false;
              throw new FleetError("bus_unavailable", "publish timed out", { retryable: true });
            }
            return target.publish(kind, msg, options);
          }) satisfies Bus["publish"];
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const writer = await SessionLogWriter.open({ store, bus: flaky, logger }, "s-settle", { fresh: true });
    const n = 2 * LIMITS.logLinesPerMessage + 2;
    await expect(
      writer.append(Array.from({ length: n }, (_, i) => ({ kind: "tool" as const, line: `l${i + 1}` }))),
    ).rejects.toThrow(/timed out/);
    // The first and the last message landed; the middle one did not.
    expect(await logMessages(ns, "s-settle")).toBe(2);
    await writer.append([{ kind: "system", line: "next" }]);
    expect(writer.seq).toBe(n + 1);
    // The stream holds them out of order now (the middle message came last): read in seq order.
    const lines = await bus.readLogs("s-settle");
    expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
    expect(lines.at(-1)?.line).toBe("next");
    expect(await logMessages(ns, "s-settle")).toBe(4);
  });

  it("a writer reopened after a crash continues the sequence from the stream, without gap or duplicate", async () => {
    // What a writer that died left: three lines in the stream (two keyed), none archived yet.
    await bus.publish(
      "log",
      logMessage(
        "s-crash",
        1,
        { kind: "tool", line: "▸ Bash ls", key: "tool:p1:start" },
        { kind: "tool", line: "✓ Bash ls", key: "tool:p1:done" },
      ),
    );
    await bus.publish("log", logMessage("s-crash", 3, "plain"));
    expect(await store.lastLogSeq("s-crash")).toBe(0);

    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-crash");
    expect(writer.seq).toBe(3);
    expect(writer.has("tool:p1:done")).toBe(true);
    // The survivor replays what it saw (keys already written are skipped) and goes on.
    await writer.append([
      { kind: "tool", line: "▸ Bash ls", key: "tool:p1:start" },
      { kind: "tool", line: "✓ Bash ls", key: "tool:p1:done" },
      { kind: "tool", line: "▸ Bash pwd", key: "tool:p2:start" },
    ]);
    expect(writer.seq).toBe(4);
    const lines = await streamed(bus, "s-crash", 4);
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4]);
    expect(lines.at(-1)?.line).toBe("▸ Bash pwd");
    expect(await logMessages(ns, "s-crash")).toBe(3);

    // And once more, as if the second writer died too.
    const third = await SessionLogWriter.open({ store, bus, logger }, "s-crash");
    expect(third.seq).toBe(4);
    await third.append([
      { kind: "tool", line: "▸ Bash pwd", key: "tool:p2:start" },
      { kind: "system", line: "Finished", key: "end:summary" },
    ]);
    expect((await streamed(bus, "s-crash", 5)).map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await logMessages(ns, "s-crash")).toBe(4);
  });

  it("a writer told where the log stands (the spawner's last line, handed to the first watch) continues after it", async () => {
    const setup = await SessionLogWriter.open({ store, bus, logger }, "s-after", { fresh: true });
    await setup.append([
      { kind: "system", line: "Sandbox ready", key: "setup:1:sandbox" },
      { kind: "system", line: "Prompt sent", key: "setup:1:prompt" },
    ]);
    const watch = await SessionLogWriter.open({ store, bus, logger }, "s-after", { after: setup.seq });
    expect(watch.seq).toBe(2);
    await watch.append([{ kind: "tool", line: "▸ Bash ls", key: "tool:p1:start" }]);
    expect((await streamed(bus, "s-after", 3)).map((l) => [l.seq, l.line])).toEqual([
      [1, "Sandbox ready"],
      [2, "Prompt sent"],
      [3, "▸ Bash ls"],
    ]);
    expect(await logMessages(ns, "s-after")).toBe(2);
  });

  it("closes a gap a crashed writer left below its last line, so readers waiting for it go on", async () => {
    // Lines 3 and 4 (one message of a failed write) never landed and their writer died before it
    // published them again; line 5 (the next message) did.
    await bus.publish("log", logMessage("s-gap", 1, "line 1", "line 2"));
    await bus.publish("log", logMessage("s-gap", 5, "line 5"));
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-gap");
    expect(writer.seq).toBe(5);
    await writer.append([{ kind: "system", line: "line 6" }]);
    const bySeq = new Map((await streamed(bus, "s-gap", 6)).map((l) => [l.seq, l.line]));
    expect([...bySeq.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(bySeq.get(3)).toMatch(/^\[line lost/);
    expect(bySeq.get(4)).toMatch(/^\[line lost/);
    expect(bySeq.get(6)).toBe("line 6");
  });

  it("continues after the store's lines when the stream holds none of the session (past its retention)", async () => {
    await store.appendLogs(
      [1, 2].map((seq) => ({
        sessionId: "s-old",
        seq,
        at: Date.now(),
        kind: "system" as const,
        line: `old ${seq}`,
        ...(seq === 2 ? { key: "old:2" } : {}),
      })),
    );
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-old");
    expect(writer.seq).toBe(2);
    expect(writer.has("old:2")).toBe(true);
    await writer.append([{ kind: "system", line: "new 3" }]);
    expect((await streamed(bus, "s-old", 1)).map((l) => [l.seq, l.line])).toEqual([[3, "new 3"]]);
  });
});
