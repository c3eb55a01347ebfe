import { describe, expect, it } from "vitest";
import { feedStreamName, streamName, type StreamKey } from "../shared/src/index.js";
import { useClusterFleet, Workload } from "./support/cluster-checks.js";
import { eventually, present, sleep } from "./support/fixtures.js";

const SESSIONS = 24;
const STREAMS: StreamKey[] = ["work", "events", "logs"];

/**
 * A three-node JetStream cluster (replicas 3, the default on a cluster) under the fleet, losing a
 * node with SIGKILL while sessions are submitted over HTTP and on the bus, run and stream their
 * logs: the leader of the fleet's streams, a follower, and two leaders in a row (the second killed
 * right after it was elected, leaving one node: no quorum until one comes back). The first node
 * killed in each case leads the outside feed.
 */
describe("a three-node NATS cluster loses a node and nothing else", () => {
  const c = useClusterFleet("ncl", {
    env: {
      // A watch message the cluster loses comes back through the lease (docs/guarantees.md §9).
      FLEET_WATCH_LEASE_MS: "10000",
      WATCHDOG_LEASE_GRACE_MS: "2000",
    },
    services: [["api"], ["spawner"], ["poller"], ["poller"], ["watchdog"]],
  });
  const { fleet } = c;
  const names = () => STREAMS.map((k) => streamName(fleet.namespace, k));

  /** Every stream (the fleet's three and the outside feed) led and with both replicas current. */
  const settled = async () => {
    const infos = await Promise.all(names().map((s) => c.cluster.settled(s)));
    await c.cluster.settled(feedStreamName(fleet.namespace), true);
    return infos;
  };

  /**
   * The node leading the outside feed. Each case kills it too: outside consumers must get every
   * terminal event even if the feed had no leader when the event was published.
   */
  const feedLeader = async () =>
    present((await c.cluster.settled(feedStreamName(fleet.namespace), true)).cluster?.leader, "the feed's leader");

  /**
   * After the restart: the restarted node holds what the others hold. Its replicas report current,
   * and once it leads each stream, the state it serves is the state served before.
   */
  const caughtUp = async (node: string) => {
    const before = await settled();
    for (const [i, stream] of names().entries()) {
      await c.cluster.lead(stream, node);
      const now = await c.cluster.info(stream);
      const was = present(before[i], stream).state;
      expect(
        { messages: now.state.messages, first: now.state.first_seq, last: now.state.last_seq },
        `${stream} led by ${node}`,
      ).toEqual({ messages: was.messages, first: was.first_seq, last: was.last_seq });
    }
  };

  /** A workload across the fault: submissions start, `fault` runs once some sessions run, and all are checked. */
  const across = async (prefix: string, fault: () => Promise<void>) => {
    const work = await Workload.open(fleet, c.cluster, "p-ncl");
    try {
      const running = work.run(prefix, SESSIONS, 200);
      // Some sessions already run and stream lines when the node goes.
      await eventually(() => work.accepted.length >= 8, 60_000, 50);
      const started = Date.now();
      await fault();
      await running;
      await c.servedOnce(work);
      expect(work.accepted).toHaveLength(SESSIONS);
      const rewatched = (await Promise.all(work.accepted.map((id) => fleet.store.get(id)))).filter(
        (s) => (s?.rewatches ?? 0) > 0,
      ).length;
      console.log(
        `${prefix}: ${SESSIONS} sessions served once; fault and recovery ${Date.now() - started} ms; ${work.retries} submissions retried; ${rewatched} watched again after a lapsed lease`,
      );
      for (const [why, { count, lastAt }] of work.failures)
        console.log(
          `${prefix}: a submission failed ${count}x, the last ${lastAt - started} ms after the fault: ${why}`,
        );
    } finally {
      await work.close();
    }
  };

  it("provisions every stream and consumer with 3 replicas by default", async () => {
    for (const s of await settled()) {
      expect(s.config.num_replicas, s.config.name).toBe(3);
      expect(s.cluster?.replicas).toHaveLength(2);
    }
    const consumers = await (await import("@nats-io/jetstream")).jetstreamManager(c.admin);
    for await (const c of consumers.consumers.list(streamName(fleet.namespace, "work")))
      expect(c.config.num_replicas, c.name).toBe(3);
  }, 60_000);

  it("the leader of the sessions' streams killed with SIGKILL mid-flight and restarted later", async () => {
    // One node leads all three streams and the feed: the one the sessions depend on for everything.
    await settled();
    const leader = await feedLeader();
    for (const s of names()) await c.cluster.lead(s, leader);
    await across("lead", async () => {
      await c.cluster.node(leader).kill();
      // New leaders are elected among the two others; sessions go on meanwhile.
      await eventually(
        async () =>
          (await Promise.all(names().map((s) => c.cluster.info(s)))).every(
            (i) => i.cluster?.leader && i.cluster.leader !== leader,
          ),
        30_000,
        200,
      );
      await sleep(3_000);
      await c.cluster.node(leader).restart();
    });
    await caughtUp(leader);
  }, 240_000);

  it("a follower killed with SIGKILL mid-flight and restarted later", async () => {
    // The follower of the fleet's streams leads the feed.
    await settled();
    const follower = await feedLeader();
    const leader = present(
      c.cluster.nodes.find((n) => n.name !== follower),
      "another node",
    ).name;
    for (const s of names()) await c.cluster.lead(s, leader);
    await across("fol", async () => {
      await c.cluster.node(follower).kill();
      await sleep(4_000);
      await c.cluster.node(follower).restart();
    });
    await caughtUp(follower);
  }, 240_000);

  it("a second leader killed right after its election: no quorum until the first comes back", async () => {
    await settled();
    const first = await feedLeader();
    const work = streamName(fleet.namespace, "work");
    for (const s of names()) await c.cluster.lead(s, first);
    let second = "";
    await across("elect", async () => {
      await c.cluster.node(first).kill();
      second = await eventually(
        async () => {
          const l = (await c.cluster.info(work)).cluster?.leader;
          return l && l !== first ? l : undefined;
        },
        30_000,
        50,
      );
      await c.cluster.node(second).kill();
      await sleep(3_000);
      await c.cluster.node(first).restart();
      await sleep(3_000);
      await c.cluster.node(second).restart();
    });
    await caughtUp(second);
  }, 300_000);
});
