// Creates or updates the outside account's feed (FLEET_FEED), once per deployment and again after
// an upgrade: the services do not, and outside systems keep their consumers on it (docs/bus.md,
// Authorization). Run as a fleet user: `<image> provision-feed` with NATS_URL, NATS_USER, NATS_PASSWORD.
import { busEnv, loadConfigOrExit } from "@fleet/shared";
import { provisionOutsideFeed } from "@fleet/shared/bus";
import { connect } from "@nats-io/transport-node";

const config = loadConfigOrExit(busEnv, process.env);
const nc = await connect({
  servers: config.NATS_URL.split(","),
  name: "provision-feed",
  ...(config.NATS_USER ? { user: config.NATS_USER, pass: config.NATS_PASSWORD } : {}),
});
try {
  // Replicas as the services give their streams: FLEET_STREAM_REPLICAS, or 3 on a cluster and 1 alone.
  await provisionOutsideFeed(nc, config.FLEET_NAMESPACE, config.FLEET_STREAM_REPLICAS);
  process.stdout.write("outside feed provisioned\n");
} finally {
  await nc.close();
}
