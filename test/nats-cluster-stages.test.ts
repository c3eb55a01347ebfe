import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceName } from "../devtools/src/infra/index.js";
import { expectServedOnce, OutsideConsumer, Workload } from "./support/cluster-checks.js";
import { eventually, present } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { startTestCluster, type TestCluster } from "./support/nats-cluster.js";

const SESSIONS = 30;
const EVENTS = 8;

/**
 * Several instances of every stage on a three-node cluster (2 api, 3 spawners, 2 pollers, 2
 * watchdogs); one of each is killed with SIGKILL while sessions are submitted, set up and watched.
 */
describe("several instances of every stage on a NATS cluster, one of each killed", () => {
  let cluster: TestCluster;
  let admin: NatsConnection;
  let outside: OutsideConsumer;
  const fleet = useTestFleet({
    prefix: "ncs",
    simulated: true,
    timeoutMs: 180_000,
    infra: async (namespace) => {
      cluster = await startTestCluster("ncs", { namespace });
      return { natsUrl: cluster.url, natsUsers: cluster.users };
    },
    env: {
      FLEET_SIM_EVENTS: String(EVENTS),
      FLEET_SIM_EVENT_MS: "250",
      FLEET_MAX_SANDBOXES: "0",
      FLEET_ACK_WAIT_MS: "5000",
      FLEET_WATCH_ACK_WAIT_MS: "4000",
      POLLER_STATUS_INTERVAL_MS: "500",
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
    },
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
    store: true,
    teardown: () => cluster?.stop(),
  });

  beforeAll(async () => {
    admin = await cluster.as("spawner");
    outside = new OutsideConsumer(await cluster.as("outside"), fleet.namespace);
    await outside.start("outside-terminal");
  });
  afterAll(async () => {
    await outside?.stop();
  });

  it("no session lost, duplicated or left running", async () => {
    const running = (name: ServiceName) => fleet.services.filter((s) => s.name === name && s.process.running);
    const apis = () => running("api").map((s) => present(s.url, "the api's URL"));
    const work = await Workload.open(fleet, cluster, "p-ncs", apis);
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
      await expectServedOnce({
        ids: work.accepted,
        get: fleet.get,
        store: fleet.store,
        nc: admin,
        namespace: fleet.namespace,
        outside,
        followed: await work.followed(),
        minLines: EVENTS,
      });
      expect(work.accepted).toHaveLength(SESSIONS);
      // Left running: no sandbox of any session is alive.
      await Promise.all(work.accepted.map((id) => fleet.noSandbox(id, 30_000, 250)));
    } finally {
      await work.close();
    }
  }, 240_000);
});
