import { jetstream } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { LIMITS, SCHEMA_VERSION, subjectFor, type Session } from "../shared/src/index.js";
import { SCENARIOS } from "../devtools/src/model/index.js";
import { eventually, sleep } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

/**
 * Bad input against a running fleet that serves one project: each refusal is a clear 4xx (HTTP) or
 * a dead letter (bus), nothing is stored for it, and a good session afterwards still completes.
 */
describe("hostile input against a running fleet", () => {
  const fleet = useTestFleet({
    prefix: "hostile",
    model: { scenario: "text-only", byModel: SCENARIOS },
    env: { FLEET_PROJECTS: "p-known,p-b", POLLER_STATUS_INTERVAL_MS: "500" },
    services: [["api"], ["spawner"], ["poller"]],
    store: true,
    nats: true,
  });
  const ns = fleet.namespace;

  const request = (sessionId: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      v: SCHEMA_VERSION,
      sessionId,
      projectId: "p-known",
      prompt: "x",
      requestedAt: Date.now(),
      config: { model: "text-only" },
      ...extra,
    });

  it("answers each bad submit with a clear 4xx and stores nothing for it", async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      ["unknown project", { projectId: "p-other", prompt: "x", sessionId: "h-proj" }, 404, /no project p-other/],
      [
        "prompt over the limit",
        { projectId: "p-known", prompt: "x".repeat(LIMITS.promptChars + 1), sessionId: "h-prompt" },
        400,
        /prompt/,
      ],
      [
        "file over the limit",
        {
          projectId: "p-known",
          prompt: "x",
          sessionId: "h-file",
          files: [{ path: "big.bin", content: "x".repeat(LIMITS.fileBytes + 1) }],
        },
        400,
        /content|file/,
      ],
      [
        "too many files",
        {
          projectId: "p-known",
          prompt: "x",
          sessionId: "h-many",
          files: Array.from({ length: LIMITS.files + 1 }, (_, i) => ({ path: `f${i}`, content: "" })),
        },
        400,
        /files/,
      ],
      [
        "traversal",
        { projectId: "p-known", prompt: "x", sessionId: "h-up", files: [{ path: "a/../../etc/x", content: "" }] },
        400,
        /path/,
      ],
      [
        "absolute path",
        { projectId: "p-known", prompt: "x", sessionId: "h-abs", files: [{ path: "/etc/passwd", content: "" }] },
        400,
        /path/,
      ],
    ];
    for (const [what, body, status, message] of cases) {
      const r = await api<{ error: { message: string } }>(fleet, "POST", "/v1/sessions", body);
      expect(r.status, what).toBe(status);
      expect(r.body.error.message, what).toMatch(message);
    }
    for (const [, body] of cases) expect(await fleet.store.get((body as { sessionId: string }).sessionId)).toBeNull();
  });

  it("dead-letters bus requests for an unknown project or past the size limit, and still runs a good one", async () => {
    const js = jetstream(fleet.nc);
    await js.publish(subjectFor(ns, "requested"), request("b-unknown", { projectId: "p-other" }), {
      msgID: "b-unknown",
    });
    // Valid against the schema (two files under the per-file limit) but past the one-message limit.
    const half = "y".repeat(Math.ceil(LIMITS.requestMessageBytes / 2));
    await js.publish(
      subjectFor(ns, "requested"),
      request("b-big", {
        files: [
          { path: "a.txt", content: half },
          { path: "b.txt", content: half },
        ],
      }),
      { msgID: "b-big" },
    );
    await js.publish(subjectFor(ns, "requested"), request("b-good"), { msgID: "b-good" });

    const { store } = fleet;
    const dead = await eventually(async () => {
      const d = await store.deadLetters({ limit: 10 });
      return d.length >= 2 ? d : undefined;
    }, 30_000);
    const reasons = Object.fromEntries(
      dead.map((d) => [
        d.excerpt.includes("b-unknown") ? "unknown" : d.excerpt.includes("b-big") ? "big" : "other",
        d.reason,
      ]),
    );
    expect(reasons.unknown).toMatch(/unknown project p-other/);
    expect(reasons.big).toMatch(/oversized: \d+ bytes, at most 900000/);
    expect(await store.get("b-unknown")).toBeNull();
    expect(await store.get("b-big")).toBeNull();
    const good = await eventually(async () => {
      const s: Session | null = await store.get("b-good");
      return s && ["completed", "failed"].includes(s.status) ? s : undefined;
    }, 90_000);
    expect(good.status).toBe("completed");
    expect(await store.deadLetters({ limit: 10 })).toHaveLength(2);
  }, 120_000);

  it("dead-letters a bus request naming another project's session, running or ended, and leaves that session as it was", async () => {
    const js = jetstream(fleet.nc);
    const { store } = fleet;
    // A session id is global: a request of project p-b must not reach p-known's session of that id.
    const claim = (when: string) =>
      js.publish(subjectFor(ns, "requested"), request("b-owned", { projectId: "p-b", prompt: `take it ${when}` }), {
        msgID: `claim:${when}`,
      });
    const refused = (when: string) =>
      eventually(
        async () => (await store.deadLetters({ limit: 20 })).find((d) => d.excerpt.includes(`take it ${when}`)),
        30_000,
      );
    const kept = (s: Session) => ({
      projectId: s.projectId,
      prompt: s.prompt,
      config: s.config,
      attempt: s.attempt,
      sandbox: s.sandbox,
      createdAt: s.createdAt,
      deadlineAt: s.deadlineAt,
    });
    await js.publish(subjectFor(ns, "requested"), request("b-owned", { config: { model: "slow" } }), {
      msgID: "requested:b-owned",
    });
    const running = await eventually(async () => {
      const s = await store.get("b-owned");
      return s?.status === "running" ? s : undefined;
    }, 90_000);
    await claim("running");
    expect((await refused("running")).reason).toMatch(
      /session b-owned exists for another project: a request of project p-b cannot use its id/,
    );
    const during = await store.get("b-owned");
    expect(during && kept(during)).toEqual(kept(running));
    expect(during?.status).toBe("running");

    // Ended, and settled: nothing writes to it any more (a later write would look like a change).
    const ended = await eventually(
      async () => {
        const s = await store.get("b-owned");
        if (!s || !["completed", "failed"].includes(s.status)) return undefined;
        await sleep(1_000);
        return JSON.stringify(await store.get("b-owned")) === JSON.stringify(s) ? s : undefined;
      },
      120_000,
      200,
    );
    expect(ended.projectId).toBe("p-known");
    await claim("ended");
    expect((await refused("ended")).reason).toMatch(/exists for another project/);
    expect(await store.get("b-owned")).toEqual(ended);
  }, 240_000);
});
