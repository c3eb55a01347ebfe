import type { Bus, Logger, SessionStore } from "@fleet/shared";
import { Gauge, type Registry } from "prom-client";
import { Gate } from "./gate.js";
import { History } from "./history.js";
import { LogHub } from "./hub.js";
import { DEFAULT_FOLLOWER_CAPS, FollowerLimits, type FollowerCaps } from "./limits.js";

export { DEFAULT_FOLLOWER_CAPS, type FollowerCaps } from "./limits.js";
export { streamLogs } from "./stream.js";

/**
 * Store reads all of this process's followers may have in flight. One: a history read can be a scan
 * on some stores (FerretDB), and readiness and every other request must not wait behind a crowd of them.
 */
const FOLLOWER_STORE_READS = 1;

export interface Followers {
  limits: FollowerLimits;
  hub: LogHub;
  history: History;
}

export interface FollowersDeps {
  store: SessionStore;
  bus: Bus;
  logger: Logger;
  registry: Registry;
  caps?: Partial<FollowerCaps>;
  endCheckMs?: number;
}

/** The log streams of one process: their caps, the live side they share, and their gauges on /metrics. */
export function createFollowers(deps: FollowersDeps): Followers {
  const limits = new FollowerLimits({ ...DEFAULT_FOLLOWER_CAPS, ...deps.caps });
  const gate = new Gate(FOLLOWER_STORE_READS);
  const hub = new LogHub({
    bus: deps.bus,
    store: deps.store,
    gate,
    logger: deps.logger,
    endCheckMs: deps.endCheckMs ?? 500,
  });
  // Read when scraped, so they cannot drift from the counts the caps and the hub keep.
  new Gauge({
    name: "fleet_api_log_followers",
    help: "Open log streams (server-sent events) this api process serves",
    registers: [deps.registry],
    collect() {
      this.set(limits.open);
    },
  });
  new Gauge({
    name: "fleet_api_log_feeds",
    help: "Live bus follows of session logs this api process holds (at most one per followed running session)",
    registers: [deps.registry],
    collect() {
      this.set(hub.liveFeeds);
    },
  });
  return { limits, hub, history: new History(deps.store, deps.bus, gate) };
}
