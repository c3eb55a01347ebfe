import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SCHEMA_VERSION,
  SessionLogWriter,
  type Bus,
  type MongoSessionStore,
  type SessionLog,
} from "../shared/src/index.js";
import { cleanup, logger, openBus, openStore, uniqueNamespace } from "./support/fixtures.js";
import { logMessages } from "./support/jetstream.js";

/** Every line the stream holds for a session, in stream order, read with a follow (ended once `n` came or after 3 s). */
async function streamed(bus: Bus, sessionId: string, n: number): Promise<SessionLog[]> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 3_000);
  const out: SessionLog[] = [];
  for await (const l of bus.followLogs(sessionId, stop.signal)) {
    out.push(l);
    if (out.length >= n) break;
  }
  clearTimeout(timer);
  return out;
}

const line = (sessionId: string, seq: number, text: string, key?: string): SessionLog => ({
  v: SCHEMA_VERSION,
  sessionId,
  seq,
  at: Date.now(),
  kind: "tool",
  line: text,
  ...(key ? { key } : {}),
});

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

  it("publishes each line to the stream with no store write on the way (no archiver runs here)", async () => {
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-pub");
    await writer.append([1, 2, 3].map((i) => ({ kind: "system" as const, line: `line ${i}` })));
    expect(writer.seq).toBe(3);
    expect((await streamed(bus, "s-pub", 3)).map((l) => [l.seq, l.line])).toEqual([
      [1, "line 1"],
      [2, "line 2"],
      [3, "line 3"],
    ]);
    expect(await store.lastLogSeq("s-pub")).toBe(0);
  });

  it("a writer reopened after a crash continues the sequence from the stream, without gap or duplicate", async () => {
    // What a writer that died left: three lines in the stream (two keyed), none archived yet.
    for (const l of [
      line("s-crash", 1, "▸ Bash ls", "tool:p1:start"),
      line("s-crash", 2, "✓ Bash ls", "tool:p1:done"),
      line("s-crash", 3, "plain"),
    ])
      await bus.publish("log", l);
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
    expect(await logMessages(ns, "s-crash")).toBe(4);

    // And once more, as if the second writer died too.
    const third = await SessionLogWriter.open({ store, bus, logger }, "s-crash");
    expect(third.seq).toBe(4);
    await third.append([
      { kind: "tool", line: "▸ Bash pwd", key: "tool:p2:start" },
      { kind: "system", line: "Finished", key: "end:summary" },
    ]);
    expect((await streamed(bus, "s-crash", 5)).map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await logMessages(ns, "s-crash")).toBe(5);
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
    expect(await logMessages(ns, "s-after")).toBe(3);
  });

  it("closes a gap a crashed writer left below its last line, so readers waiting for it go on", async () => {
    // Line 3 of a failed write never landed and its writer died before it published it again.
    for (const seq of [1, 2, 4]) await bus.publish("log", line("s-gap", seq, `line ${seq}`));
    const writer = await SessionLogWriter.open({ store, bus, logger }, "s-gap");
    expect(writer.seq).toBe(4);
    await writer.append([{ kind: "system", line: "line 5" }]);
    const bySeq = new Map((await streamed(bus, "s-gap", 5)).map((l) => [l.seq, l.line]));
    expect([...bySeq.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    expect(bySeq.get(3)).toMatch(/^\[line lost/);
    expect(bySeq.get(5)).toBe("line 5");
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
