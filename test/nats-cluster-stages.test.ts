import { describe, expect, it } from "vitest";
import type { ServiceName } from "../devtools/src/infra/index.js";
import { useClusterFleet, Workload } from "./support/cluster-checks.js";
import { eventually, present } from "./support/fixtures.js";

const SESSIONS = 30;

/**
 * Several instances of every stage on a three-node cluster (2 api, 3 spawners, 2 pollers, 2
 * watchdogs); one of each is killed with SIGKILL while sessions are submitted, set up and watched.
 */
describe("several instances of every stage on a NATS cluster, one of each killed", () => {
  const c = useClusterFleet("ncs", {
    services: [
      ["api"],
      ["api"],
      ["spawner"],
      ["spawner"],
      ["spawner"],
      ["poller"],
      ["poller"],
      ["watchdog"],
      ["watchdog"],
    ],
  });
  const { fleet } = c;

  it("no session lost, duplicated or left running", async () => {
    const running = (name: ServiceName) => fleet.services.filter((s) => s.name === name && s.process.running);
    const apis = () => running("api").map((s) => present(s.url, "the api's URL"));
    const work = await Workload.open(fleet, c.cluster, "p-ncs", apis);
    try {
      const submitting = work.run("st", SESSIONS, 150);
      await eventually(() => work.accepted.length >= 10, 60_000, 50);
      // Mid-flight: sessions are being submitted, set up and watched. The first api stays (live followers use it).
      const victims = (["api", "spawner", "poller", "watchdog"] as const).map((name) =>
        present(running(name).at(-1), `a running ${name}`),
      );
      for (const v of victims) process.kill(v.process.pid, "SIGKILL");
      await Promise.all(victims.map((v) => v.process.exited));
      await submitting;
      await c.servedOnce(work);
      expect(work.accepted).toHaveLength(SESSIONS);
      // Left running: no sandbox of any session is alive.
      await Promise.all(work.accepted.map((id) => fleet.noSandbox(id, 30_000, 250)));
    } finally {
      await work.close();
    }
  }, 240_000);
});
