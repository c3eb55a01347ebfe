import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import { SessionConfig } from "../shared/src/index.js";
import { openStore, useStore } from "./support/fixtures.js";

const config = SessionConfig.parse({});

/** The composed store: one connection, the ports of every collection, set up by any instance. */
describe(`the session store on a real ${inject("storeKind")}`, () => {
  const store = useStore("store");

  it("can be initialised again by every instance that starts, and closed twice", async () => {
    await store.init();
    const second = await openStore(store.database);
    await Promise.all([second.init(), store.init()]);
    await second.ping();
    await Promise.all([second.close(), second.close()]);
    await second.close();
  });

  it("keeps a session's whole life in its own document, with no transition records beside it", async () => {
    await store.create({ id: "life", projectId: "p", prompt: "x", config });
    expect(await store.claimAttempt("life", 1, { phase: "sandbox_creating" })).toBe(true);
    expect(await store.acquireSlot("global", 1, "life")).toBe(true);
    await store.appendLogs([{ sessionId: "life", seq: 1, at: 1, kind: "system", line: "ready" }]);
    expect(
      (await store.transition("life", { from: ["pending"], to: "running", set: { phase: "running" } }))?.status,
    ).toBe("running");
    expect((await store.transition("life", { from: ["pending", "running"], to: "completed" }))?.status).toBe(
      "completed",
    );
    await store.releaseSlots("life");
    expect(await store.get("life")).toMatchObject({ status: "completed", attempt: 1, phase: "running" });
    const client = new MongoClient(inject("mongoUri"));
    try {
      const names = (await client.db(store.database).listCollections().toArray()).map((c) => c.name);
      expect(names).toEqual(expect.arrayContaining(["sessions", "slots", "session_logs"]));
      expect(names).not.toContain("session_transitions");
      expect(names).not.toContain("claims");
    } finally {
      await client.close();
    }
  });
});
