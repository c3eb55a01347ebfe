/**
 * Publishes a session request straight on the bus as the fleet's outside user, follows its log from
 * the feed and stops at its terminal event.
 *   NATS_URL=nats://127.0.0.1:4222 NATS_USER=… NATS_PASSWORD=… node dist/examples/bus-submit.js
 */
import { connect } from "@nats-io/transport-node";
import { FleetBusClient } from "@session-fleet/client";

const nc = await connect({
  servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
  user: process.env.NATS_USER,
  pass: process.env.NATS_PASSWORD,
});
const fleet = new FleetBusClient({ nc });
const sessionId = `example-${Date.now().toString(36)}`;
const { requestedAt } = await fleet.submit({ sessionId, projectId: "default", prompt: "Write hello.txt" });

const stop = new AbortController();
const printing = (async () => {
  for await (const line of fleet.follow(sessionId, { signal: stop.signal })) console.log(`${line.seq}\t${line.line}`);
})();
const end = await fleet.awaitEnd(sessionId, { since: requestedAt });
// The feed copies lines and events as they are published; give the last lines a moment to arrive.
setTimeout(() => stop.abort(), 1_000);
await printing;
console.log(`ended: ${end.status}`);
await nc.close();
