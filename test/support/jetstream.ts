import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { inject } from "vitest";
import { streamName, type StreamKey } from "../../shared/src/index.js";

export interface ConsumerState {
  name: string;
  /** Pull requests the server holds for it: > 0 while some client is still pulling. */
  waiting: number;
}

/** The consumers the server has on one of the namespace's streams, read with a JetStream manager of the test's own. */
export async function streamConsumers(namespace: string, stream: StreamKey): Promise<ConsumerState[]> {
  const nc = await connect({ servers: inject("natsUrl") });
  try {
    const jsm = await jetstreamManager(nc);
    const out: ConsumerState[] = [];
    for await (const ci of jsm.consumers.list(streamName(namespace, stream))) out.push({ name: ci.name, waiting: ci.num_waiting });
    return out;
  } finally {
    await nc.close();
  }
}
