import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FEED, SCHEMA_VERSION, feedStreamName, subjectFilter, subjectFor } from "../shared/src/index.js";
import { FEED_API_PREFIX, provisionOutsideFeed } from "../shared/src/bus/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { eventually } from "./support/fixtures.js";

const NS = "fup";

/**
 * The feed sources the lent subjects from the fleet's streams. A feed made before that captured
 * them as they were published; provisioning it again switches it to sources that start at that
 * moment, so nothing it already holds arrives a second time and nothing after is missed.
 */
describe("the outside feed brought from capturing to sources", () => {
  let srv: AuthServer;
  beforeAll(async () => {
    srv = await startAuthServer("feedupgrade", NS);
  }, 60_000);
  afterAll(async () => {
    await srv?.stop();
  });

  const failed = (sessionId: string) => ({
    v: SCHEMA_VERSION,
    sessionId,
    projectId: "p",
    at: 1,
    error: { code: "internal", message: "x" },
  });

  it("starts its sources at the switch: what it holds stays once, what comes after arrives", async () => {
    const fleet = await srv.as("spawner");
    const feedJsm = await jetstreamManager(fleet, { apiPrefix: FEED_API_PREFIX, checkAPI: false });
    const name = feedStreamName(NS);
    const poller = await srv.busAs("poller");
    // Published before the feed had sources: only in the fleet's stream (the fresh feed sources it).
    await poller.publish("failed", failed("before"));
    // The feed as it was: every kind captured, no sources, emptied.
    const made = (await feedJsm.streams.info(name)).config;
    await feedJsm.streams.update(name, {
      ...made,
      sources: [],
      subjects: FEED.kinds.map((k) => subjectFilter(NS, k)),
    });
    await feedJsm.streams.purge(name).catch(() => undefined);
    const outside = await jetstreamManager(await srv.as("outside"), { checkAPI: false });
    const ids = async () => {
      const seen: string[] = [];
      const c = await jetstream(await srv.as("outside")).consumers.get(name, {
        filter_subjects: [subjectFor(NS, "failed")],
      });
      for (let m = await c.next({ expires: 1_000 }); m; m = await c.next({ expires: 1_000 }))
        seen.push(m.json<{ sessionId: string }>().sessionId);
      return seen;
    };
    await poller.publish("failed", failed("captured"));
    await eventually(async () => (await ids()).includes("captured"), 10_000, 100);

    await provisionOutsideFeed(fleet, NS);
    const now = (await outside.streams.info(name)).config;
    expect(now.subjects).toEqual(FEED.requests.map((k) => subjectFilter(NS, k)));
    expect(now.sources?.every((s) => s.opt_start_time)).toBe(true);
    await poller.publish("failed", failed("after"));
    await eventually(async () => (await ids()).includes("after"), 10_000, 100);
    expect(await ids()).toEqual(["captured", "after"]);
  });
});
