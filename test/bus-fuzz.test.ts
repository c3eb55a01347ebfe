import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { SCHEMA_VERSION, consumerName, streamName, subjectFor } from "../shared/src/index.js";
import { useBus } from "./support/api-fixture.js";
import { eventually } from "./support/fixtures.js";

/** A small seeded generator, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function malformed(r: () => number, i: number): string | Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const valid = { v: SCHEMA_VERSION, sessionId: `fz-${i}`, projectId: "p", prompt: "x", requestedAt: 1 };
  const weird = pick<unknown>([
    null,
    true,
    -1,
    1.5,
    "",
    "x".repeat(70_000),
    [],
    {},
    { $gt: "" },
    "../../etc/passwd",
    "\u0000",
    "ses.with.dots",
    "*",
    ">",
  ]);
  const field = pick(["v", "sessionId", "projectId", "prompt", "requestedAt", "config", "files", "cardId", "extra"]);
  switch (i % 6) {
    case 0:
      return Uint8Array.from({ length: 1 + Math.floor(r() * 200) }, () => Math.floor(r() * 256));
    case 1:
      return JSON.stringify(weird);
    case 2:
      return JSON.stringify({ ...valid, [field]: weird });
    case 3:
      return JSON.stringify({ ...valid, v: pick([0, 2, "1", null]) });
    case 4:
      return JSON.stringify({ ...valid, files: [{ path: pick(["../x", "/abs", "a//b", "a\\b", ""]), content: "x" }] });
    default:
      return `${JSON.stringify(valid).slice(0, Math.floor(r() * 40))}`;
  }
}

describe("bus consumers under generated malformed messages", () => {
  const fixture = useBus({ prefix: "fz", nats: true });
  const { namespace: ns, store, bus } = fixture;

  it("dead-letters every bad message, never crashes or stalls, and still handles good ones", async () => {
    const seen = { spawner: [] as string[], poller: [] as string[], watchdog: [] as string[] };
    const subs = [
      bus.consume("spawner", { handler: async (m) => void seen.spawner.push(m.sessionId) }),
      bus.consume("poller", { handler: async (m) => void seen.poller.push(m.sessionId) }),
      bus.consume("watchdog", { handler: async (m) => void seen.watchdog.push(m.sessionId) }),
    ];
    const js = jetstream(fixture.nc);
    const r = rng(20261124);
    const count = 120;
    const targets = ["requested", "running", "cancel"] as const;
    for (let i = 0; i < count; i++) {
      await js.publish(subjectFor(ns, targets[i % 3] as (typeof targets)[number]), malformed(r, i), {
        msgID: `fuzz-${i}`,
      });
    }
    // Good messages after the flood still go through, on every consumer.
    await bus.publish("requested", {
      v: SCHEMA_VERSION,
      sessionId: "good-req",
      projectId: "p",
      prompt: "x",
      requestedAt: 1,
    });
    await bus.publish("running", {
      v: SCHEMA_VERSION,
      sessionId: "good-run",
      projectId: "p",
      sandboxId: "s",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    await bus.publish("cancel", { v: SCHEMA_VERSION, sessionId: "good-cancel", at: 1 });
    await eventually(
      () =>
        seen.spawner.includes("good-req") && seen.poller.includes("good-run") && seen.watchdog.includes("good-cancel"),
      30_000,
    );
    const dead = await eventually(async () => {
      const d = await store.deadLetters({ limit: 1_000 });
      return d.length >= count ? d : undefined;
    }, 30_000);
    expect(dead).toHaveLength(count);
    expect(dead.every((d) => d.reason.startsWith("malformed message") && d.excerpt.length <= 1_000)).toBe(true);
    // Only the good ones reached a handler.
    expect(seen).toEqual({ spawner: ["good-req"], poller: ["good-run"], watchdog: ["good-cancel"] });
    // Nothing is left pending or unacknowledged.
    const jsm = await jetstreamManager(fixture.nc);
    for (const [c, stream] of [
      ["spawner", "work"],
      ["poller", "work"],
      ["watchdog", "events"],
    ] as const) {
      const info = await jsm.consumers.info(streamName(ns, stream), consumerName(ns, c));
      expect(info.num_pending + info.num_ack_pending, c).toBe(0);
    }
    await Promise.all(subs.map((s) => s.stop()));
  }, 90_000);
});
