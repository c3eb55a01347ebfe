import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import {
  FleetError,
  SCHEMA_VERSION,
  consumerName,
  streamName,
  subjectFor,
  type SessionRequested,
} from "../shared/src/index.js";
import { useBus } from "./support/api-fixture.js";
import { eventually, openBus, sleep } from "./support/fixtures.js";
import { logMessage } from "./support/jetstream.js";

function request(sessionId: string, prompt = "hello"): SessionRequested {
  return {
    v: SCHEMA_VERSION,
    sessionId,
    projectId: "p1",
    prompt,
    config: { fallbackModels: [], tools: [], timeoutMs: 600_000 },
    files: [],
    requestedAt: Date.now(),
  };
}

// Every instance of a deployment provisions with the same tuning; so do the test's instances.
const tuning = {
  tuning: { ackWaitMs: 2_000, heldAckWaitMs: 2_000, maxDeliver: 3 },
  backoff: { baseMs: 50, maxMs: 200 },
};

describe("bus on a real nats-server", () => {
  const fixture = useBus({ prefix: "bus", bus: tuning, nats: true });
  const { namespace: ns, store, bus } = fixture;

  it("provisioning twice (and concurrently) is harmless and leaves one set of streams", async () => {
    const other = await openBus(ns, { config: tuning });
    await Promise.all([bus.provision(), other.provision(), bus.provision()]);
    await other.close();
    const jsm = await jetstreamManager(fixture.nc);
    const names: string[] = [];
    for await (const s of jsm.streams.list()) if (s.config.name.startsWith(ns.toUpperCase())) names.push(s.config.name);
    expect(names.sort()).toEqual([streamName(ns, "events"), streamName(ns, "logs"), streamName(ns, "work")].sort());
    const work = await jsm.streams.info(streamName(ns, "work"));
    expect(work.config.retention).toBe("workqueue");
    const events = await jsm.streams.info(streamName(ns, "events"));
    expect(events.config.retention).toBe("limits");
  });

  it("drops a duplicate publish with the same Nats-Msg-Id", async () => {
    const first = await bus.publish("completed", {
      v: 1,
      sessionId: "dup1",
      projectId: "p",
      at: 1,
      response: "ok",
      toolCalls: 0,
    });
    const again = await bus.publish("completed", {
      v: 1,
      sessionId: "dup1",
      projectId: "p",
      at: 2,
      response: "ok",
      toolCalls: 0,
    });
    // A failed event for the same session shares the terminal id: one terminal event per session.
    const other = await bus.publish("failed", {
      v: 1,
      sessionId: "dup1",
      projectId: "p",
      at: 3,
      error: { code: "x", message: "y" },
    });
    const cancelled = await bus.publish("cancelled", { v: 1, sessionId: "dup1", projectId: "p", at: 4 });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ seq: first.seq, duplicate: true });
    expect(other.duplicate).toBe(true);
    expect(cancelled.duplicate).toBe(true);
    // A cancel request has an id of its own: it neither hides nor is hidden by the session's end.
    const cancel = await bus.publish("cancel", { v: 1, sessionId: "dup1", at: 5 });
    expect(cancel.duplicate).toBe(false);
    const jsm = await jetstreamManager(fixture.nc);
    const info = await jsm.streams.info(streamName(ns, "events"));
    expect(info.state.messages).toBe(2);
  });

  it("refuses to publish a message that breaks its schema", async () => {
    await expect(bus.publish("requested", { ...request("bad"), prompt: "" })).rejects.toBeInstanceOf(FleetError);
  });

  it("terminates a malformed message, records it as dead, and processes the next good one", async () => {
    const seen: string[] = [];
    const sub = bus.consume("spawner", { handler: async (m) => void seen.push(m.sessionId) });
    const js = jetstream(fixture.nc);
    const subject = subjectFor(ns, "requested");
    await js.publish(subject, "{not json", { msgID: "garbage-1" });
    await js.publish(subject, JSON.stringify({ v: 2, sessionId: "wrong-version" }), { msgID: "garbage-2" });
    await bus.publish("requested", request("good-after-bad"));
    await eventually(() => seen.includes("good-after-bad"));
    const dead = await eventually(async () => {
      const d = await store.deadLetters();
      return d.length >= 2 ? d : undefined;
    });
    expect(dead.map((d) => d.excerpt).sort()).toEqual(['{"v":2,"sessionId":"wrong-version"}', "{not json"]);
    expect(
      dead.every((d) => d.reason.startsWith("malformed message") && d.consumer === consumerName(ns, "spawner")),
    ).toBe(true);
    expect(seen).toEqual(["good-after-bad"]);
    await sub.stop();
    // Terminated messages leave the work queue: nothing is redelivered later.
    const jsm = await jetstreamManager(fixture.nc);
    const ci = await jsm.consumers.info(streamName(ns, "work"), consumerName(ns, "spawner"));
    expect(ci.num_pending + ci.num_ack_pending).toBe(0);
  });

  it("redelivers after a retryable failure, then succeeds", async () => {
    const attempts: number[] = [];
    const sub = bus.consume("poller", {
      handler: async (_m, ctx) => {
        attempts.push(ctx.deliveryCount);
        if (ctx.deliveryCount < 2) throw new FleetError("store_unavailable", "hiccup", { retryable: true });
      },
    });
    await bus.publish("running", {
      v: 1,
      sessionId: "retry1",
      projectId: "p",
      sandboxId: "sb",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    await eventually(() => attempts.length === 2);
    await sleep(300);
    expect(attempts).toEqual([1, 2]);
    await sub.stop();
  });

  it("dead-letters a permanent failure at once and a retryable one after max_deliver", async () => {
    const sub = bus.consume("poller", {
      handler: async (m) => {
        if (m.sessionId === "perm") throw new FleetError("bad_input", "unknown project");
        throw new Error("always failing");
      },
    });
    await bus.publish("running", {
      v: 1,
      sessionId: "perm",
      projectId: "p",
      sandboxId: "s",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    await bus.publish("running", {
      v: 1,
      sessionId: "exhaust",
      projectId: "p",
      sandboxId: "s",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    const dead = await eventually(async () => {
      const d = (await store.deadLetters()).filter((x) => x.subject === subjectFor(ns, "running"));
      return d.length === 2 ? d : undefined;
    });
    const byReason = Object.fromEntries(dead.map((d) => [JSON.parse(d.excerpt).sessionId as string, d]));
    expect(byReason.perm?.reason).toBe("unknown project");
    expect(byReason.perm?.deliveries).toBe(1);
    expect(byReason.exhaust?.reason).toMatch(/^exhausted 3 deliveries: always failing/);
    expect(byReason.exhaust?.deliveries).toBe(3);
    await sub.stop();
  });

  it("records a message as dead when its holders never answer and max_deliver runs out", async () => {
    const deliveries: number[] = [];
    // A handler that hangs without heartbeats stands for a crashed holder: only ack_wait (2 s) ends each try.
    const sub = bus.consume("poller", {
      handler: (m, ctx) => {
        if (m.sessionId !== "silent") return Promise.resolve();
        deliveries.push(ctx.deliveryCount);
        return new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
      },
    });
    await bus.publish("running", {
      v: 1,
      sessionId: "silent",
      projectId: "p",
      sandboxId: "s",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    const dead = await eventually(
      async () => (await store.deadLetters()).find((d) => d.excerpt.includes('"silent"')),
      15_000,
    );
    expect(dead.reason).toMatch(/exhausted 3 deliveries without an answer/);
    expect(dead.subject).toBe(subjectFor(ns, "running"));
    expect(deliveries).toEqual([1, 2, 3]);
    // The exhausted message is removed from the work queue.
    const jsm = await jetstreamManager(fixture.nc);
    await eventually(async () => {
      const ci = await jsm.consumers.info(streamName(ns, "work"), consumerName(ns, "poller"));
      return ci.num_pending === 0;
    });
    await sub.stop(100);
  }, 30_000);

  it("follows one session's log lines: history first, then live, and nothing of other sessions", async () => {
    await bus.publish("log", logMessage("follow-me", 1, "l1"));
    await bus.publish("log", logMessage("someone-else", 1, "l1"));
    await bus.publish("log", logMessage("follow-me", 2, "l2"));
    const stop = new AbortController();
    const seen: number[] = [];
    const reading = (async () => {
      for await (const l of bus.followLogs("follow-me", stop.signal)) {
        expect(l.sessionId).toBe("follow-me");
        seen.push(l.seq);
        if (seen.length === 4) stop.abort();
      }
    })();
    await eventually(() => seen.length === 2);
    // One message of two lines: followed line by line.
    await bus.publish("log", logMessage("follow-me", 3, "l3", "l4"));
    await reading;
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(await bus.lastLogSeq("follow-me")).toBe(4);
    expect(await bus.lastLogSeq("never-logged")).toBe(0);
  });

  it("shares one durable between two competing consumers, each message to exactly one", async () => {
    const otherBus = await openBus(ns, { name: "second-instance", config: tuning });
    const got = new Map<string, string[]>();
    const mk = (who: string) => async (m: SessionRequested) => {
      got.set(m.sessionId, [...(got.get(m.sessionId) ?? []), who]);
      await sleep(5);
    };
    const a = bus.consume("spawner", { handler: mk("a"), maxInFlight: 4 });
    const b = otherBus.consume("spawner", { handler: mk("b"), maxInFlight: 4 });
    const ids = Array.from({ length: 60 }, (_, i) => `share-${i}`);
    await Promise.all(ids.map((id) => bus.publish("requested", request(id))));
    await eventually(() => ids.every((id) => got.has(id)));
    await sleep(200);
    expect(ids.every((id) => got.get(id)?.length === 1)).toBe(true);
    const who = [...got.values()].flat();
    expect(who.filter((w) => w === "a").length).toBeGreaterThan(0);
    expect(who.filter((w) => w === "b").length).toBeGreaterThan(0);
    await Promise.all([a.stop(), b.stop()]);
    await otherBus.close();
  });

  it("an exclusive consumer whose hold lapsed gives the message no verdict: it is delivered again, not acked", async () => {
    const seen: Array<{ delivery: number; heldAfter: boolean }> = [];
    // Hold = ack wait (2 s) minus one heartbeat (0.5 s). The first delivery's handler blocks the
    // event loop for 2.5 s (a stalled process) and then returns as if its work were done.
    const sub = bus.consume("poller", {
      exclusive: true,
      heartbeatMs: 500,
      handler: async (m, ctx) => {
        if (m.sessionId !== "frozen-holder") return;
        if (ctx.deliveryCount === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_500);
        seen.push({ delivery: ctx.deliveryCount, heldAfter: ctx.holds() });
      },
    });
    await bus.publish("running", {
      v: 1,
      sessionId: "frozen-holder",
      projectId: "p",
      sandboxId: "s",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    // Before: the handler's return was acked at once (the lapse timer had not run yet), and the
    // message, which the server may already have handed to another instance, was gone.
    await eventually(() => seen.some((d) => d.delivery === 2), 15_000);
    expect(seen[0]).toEqual({ delivery: 1, heldAfter: false });
    expect(seen.find((d) => d.delivery === 2)?.heldAfter).toBe(true);
    await sub.stop(100);
  }, 30_000);

  it("keeps long work alive with working() past the ack deadline, never delivering it twice", async () => {
    const deliveries: number[] = [];
    const sub = bus.consume("spawner", {
      heartbeatMs: 300,
      handler: async (_m, ctx) => {
        deliveries.push(ctx.deliveryCount);
        await sleep(3_000); // ack_wait is 2 s in this file
      },
    });
    await bus.publish("requested", request("long-work"));
    await eventually(() => deliveries.length === 1);
    await sleep(3_500);
    expect(deliveries).toEqual([1]);
    await sub.stop();
  });

  it("caps in-flight work per instance", async () => {
    let running = 0;
    let peak = 0;
    let done = 0;
    const sub = bus.consume("spawner", {
      maxInFlight: 3,
      handler: async () => {
        running += 1;
        peak = Math.max(peak, running);
        await sleep(50);
        running -= 1;
        done += 1;
      },
    });
    await Promise.all(Array.from({ length: 15 }, (_, i) => bus.publish("requested", request(`cap-${i}`))));
    await eventually(() => done === 15);
    expect(peak).toBe(3);
    await sub.stop();
  });

  it("on stop, releases unfinished work to another instance at once", async () => {
    const otherBus = await openBus(ns, { name: "taker", config: tuning });
    const taken: Array<{ who: string; delivery: number }> = [];
    let aborted = false;
    const slow = bus.consume("spawner", {
      handler: async (_m, ctx) => {
        taken.push({ who: "slow", delivery: ctx.deliveryCount });
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        aborted = true;
      },
    });
    await bus.publish("requested", request("release-me"));
    await eventually(() => taken.length === 1);
    const started = Date.now();
    await slow.stop(200);
    const other = otherBus.consume("spawner", {
      handler: async (_m, ctx) => void taken.push({ who: "other", delivery: ctx.deliveryCount }),
    });
    await eventually(() => taken.length === 2);
    // Released with a nak, not left to the 2 s ack deadline.
    expect(Date.now() - started).toBeLessThan(1_800);
    expect(aborted).toBe(true);
    expect(taken).toEqual([
      { who: "slow", delivery: 1 },
      { who: "other", delivery: 2 },
    ]);
    await other.stop();
    await otherBus.close();
  });
});
