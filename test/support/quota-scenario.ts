import { jetstream } from "@nats-io/jetstream";
import { beforeAll, describe, expect, it } from "vitest";
import type { ServiceName } from "../../devtools/src/infra/index.js";
import { SCHEMA_VERSION, subjectFor, type Session } from "../../shared/src/index.js";
import { eventually } from "./fixtures.js";
import { useTestFleet } from "./fleet-fixture.js";

const QUOTA = 5;
/** Sessions per project, submitted project after project: the order a first-come queue would serve. */
const PROJECTS: Array<[string, number]> = [
  ["p-a", 17],
  ["p-b", 17],
  ["p-c", 16],
];
const TOTAL = PROJECTS.reduce((n, [, k]) => n + k, 0);

/**
 * A provider account that runs at most 5 sandboxes, behind the real api, two spawners, a poller and
 * a watchdog, with no cap configured: the fleet learns the quota from the answers. Once on the
 * simulated provider (FLEET_SIM_QUOTA: it answers a sixth like E2B: 429, Retry-After, the limit
 * named), once on the local E2B's concurrent-sandbox quota through the fleet's e2b provider, where
 * every session runs a real OpenCode server.
 */
export function quotaScenario(kind: "simulated" | "e2b"): void {
  describe(`admission that learns the provider's quota (${kind})`, () => {
    const common = {
      FLEET_MAX_SANDBOXES: "0",
      FLEET_ADMISSION_RAISE_MS: "4000",
      // Every request is held (queued) by a spawner at once, so the fair order sees all of them.
      SPAWNER_MAX_IN_FLIGHT: String(TOTAL + 10),
      FLEET_MAX_DELIVER: "3",
      // The fixture's short ack wait can lapse for one of 50 held requests on a loaded machine, and a
      // redelivery takes attempt 2 for that reason alone; here only quota answers may be seen.
      FLEET_ACK_WAIT_MS: "20000",
      POLLER_STATUS_INTERVAL_MS: "300",
    };
    const services: Array<[ServiceName]> = [["api"], ["spawner"], ["spawner"], ["poller"], ["watchdog"]];
    const fleet =
      kind === "simulated"
        ? useTestFleet({
            prefix: "quota",
            simulated: true,
            env: {
              ...common,
              FLEET_SIM_QUOTA: String(QUOTA),
              FLEET_SIM_RETRY_AFTER_MS: "500",
              FLEET_SIM_EVENTS: "3",
              FLEET_SIM_EVENT_MS: "150",
            },
            services,
            store: true,
            nats: true,
          })
        : useTestFleet({
            prefix: "quotae2b",
            sandboxes: "e2b",
            // An answer and no tool: the agent's work is short, its server's start is not.
            model: { scenario: "text-only" },
            env: common,
            services,
            store: true,
            nats: true,
          });
    beforeAll(() => {
      if (kind === "e2b") fleet.e2b.setFaults({ maxConcurrent: QUOTA });
    });
    /** The sandboxes the provider holds right now. */
    const held = async () => (kind === "e2b" ? fleet.e2b.sandboxIds().length : (await fleet.provider.list()).length);

    it(
      `runs ${TOTAL} sessions of 3 projects under a quota of ${QUOTA}: all complete, fairly, never more than ${QUOTA} sandboxes`,
      async () => {
        const started = Date.now();
        // Published on the bus as another system would, project after project, within a fraction of a
        // second: the fleet's clock orders them exactly so.
        const js = jetstream(fleet.nc);
        const ids: Array<{ id: string; projectId: string }> = [];
        for (const [projectId, n] of PROJECTS)
          for (let i = 0; i < n; i++) {
            const id = `${projectId}-${i}-${fleet.namespace}`;
            await js.publish(
              subjectFor(fleet.namespace, "requested"),
              JSON.stringify({
                v: SCHEMA_VERSION,
                sessionId: id,
                projectId,
                prompt: `task ${i} of ${projectId}`,
                // On the local E2B the 50 real agents queue for minutes on a loaded machine.
                config: { timeoutMs: kind === "e2b" ? 1_200_000 : 300_000 },
                requestedAt: Date.now(),
              }),
              { msgID: `requested:${id}` },
            );
            ids.push({ id, projectId });
          }
        const submittedMs = Date.now() - started;

        // The provider's own count, sampled while the fleet drains; and what the queue shows.
        let peak = 0;
        let samples = 0;
        let maxWaiting = 0;
        let maxPosition = 0;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            peak = Math.max(peak, await held());
            samples++;
            const waiting = await fleet.store.waitingSessions();
            maxWaiting = Math.max(maxWaiting, waiting.length);
            const last = waiting.at(-1);
            if (last) maxPosition = Math.max(maxPosition, (await fleet.store.get(last.id))?.queuePosition ?? 0);
            await new Promise((r) => setTimeout(r, 40));
          }
        })();
        let done: Session[];
        try {
          done = await eventually(
            async () => {
              const docs = await Promise.all(ids.map(({ id }) => fleet.store.get(id)));
              return docs.every((d) => d && ["completed", "failed", "cancelled"].includes(d.status))
                ? (docs as Session[])
                : undefined;
            },
            kind === "e2b" ? 1_200_000 : 240_000,
            200,
          );
        } finally {
          sampling = false;
          await sampler;
        }
        const drainMs = Math.max(...done.map((d) => d.completedAt ?? 0)) - started;

        // None failed, none for quota, none spent a redelivery on it.
        for (const d of done) {
          expect({ id: d.id, status: d.status, error: d.error }).toEqual({
            id: d.id,
            status: "completed",
            error: undefined,
          });
          expect(d.attempt).toBe(1);
        }
        // The provider never held more than its quota, and the fleet used all of it.
        expect(peak).toBe(QUOTA);
        // The fleet learned the cap, in one store document every spawner reads.
        const learned = await fleet.store.learnedCap("global");
        expect(learned?.cap).toBe(QUOTA);
        expect(learned?.providerLimit).toBe(QUOTA);
        expect(learned?.hits).toBeGreaterThan(0);
        // Sessions were seen waiting, with their place in the queue.
        expect(maxWaiting).toBeGreaterThan(10);
        expect(maxPosition).toBeGreaterThan(5);

        // Fairness: completions interleave across projects although they were submitted project after
        // project. Each project's first completion is among the first 3 × quota, and no project has
        // finished before every other project had 3 completed (a first-come queue fails both: p-c would
        // start after 34 completions, p-a finish before p-c's first).
        const order = [...done].sort((a, b) => (a.completedAt ?? 0) - (b.completedAt ?? 0)).map((d) => d.projectId);
        const rank = (p: string, nth: number) => order.flatMap((q, i) => (q === p ? [i] : []))[nth];
        const firsts = PROJECTS.map(([p]) => rank(p, 0) ?? TOTAL);
        const lasts = PROJECTS.map(([p, n]) => rank(p, n - 1) ?? -1);
        const thirds = PROJECTS.map(([p]) => rank(p, 2) ?? TOTAL);
        const letters = order.map((p) => p.slice(-1)).join("");
        console.log(
          `quota admission (${kind}): ${TOTAL} sessions, quota ${QUOTA}: submitted in ${submittedMs} ms, drained in ${drainMs} ms; ` +
            `peak ${peak} sandboxes (${samples} samples); learned cap ${learned?.cap} after ${learned?.hits} quota answers; ` +
            `most waiting ${maxWaiting}, deepest position ${maxPosition}; completion order ${letters}; ` +
            `first completions at ${firsts.join("/")}, last at ${lasts.join("/")}`,
        );
        for (const first of firsts) expect(first, letters).toBeLessThan(3 * QUOTA);
        for (const last of lasts) for (const third of thirds) expect(last, letters).toBeGreaterThan(third);
        await eventually(async () => (await held()) === 0, 15_000, 100);
        if (kind === "e2b") expect(fleet.e2b.stats().peakRunning).toBe(QUOTA);
      },
      kind === "e2b" ? 1_300_000 : 300_000,
    );
  });
}
