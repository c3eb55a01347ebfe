import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import {
  CONSUMERS,
  STREAMS,
  streamName,
  streamSubjects,
  subjectFilter,
  type ConsumerName,
  type EventKind,
  type StreamKey,
} from "../contracts/index.js";

export interface ConsumerTuning {
  ackWaitMs: number;
  /**
   * Ack wait of the consumers whose messages are held for a session's whole life (the poller's
   * session.running): how soon another instance takes a session over after its holder died. Short,
   * since the holder confirms its heartbeats (see `exclusive` in ConsumeOptions).
   */
  heldAckWaitMs: number;
  maxDeliver: number;
  maxAckPending: number;
}

export const DEFAULT_TUNING: ConsumerTuning = {
  ackWaitMs: 30_000,
  heldAckWaitMs: 6_000,
  maxDeliver: 10,
  maxAckPending: 10_000,
};

export function consumerName(namespace: string, name: ConsumerName): string {
  return namespace ? `${namespace}_${name}` : name;
}

function streamConfig(namespace: string, key: StreamKey, replicas: number): Partial<StreamConfig> & { name: string } {
  const s = STREAMS[key];
  return {
    num_replicas: replicas,
    name: streamName(namespace, key),
    description: s.description,
    subjects: streamSubjects(namespace, key),
    retention: s.retention === "workqueue" ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(s.maxAgeMs),
    duplicate_window: nanos(s.duplicateWindowMs),
    ...(s.maxMsgsPerSubject ? { max_msgs_per_subject: s.maxMsgsPerSubject } : {}),
  };
}

function consumerConfig(
  namespace: string,
  name: ConsumerName,
  tuning: ConsumerTuning,
  replicas: number,
): Partial<ConsumerConfig> & { durable_name: string } {
  const spec: { event: EventKind; maxDeliver?: number; held?: boolean } = CONSUMERS[name];
  return {
    durable_name: consumerName(namespace, name),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjectFilter(namespace, spec.event),
    ack_wait: nanos(spec.held ? tuning.heldAckWaitMs : tuning.ackWaitMs),
    max_deliver: spec.maxDeliver ?? tuning.maxDeliver,
    max_ack_pending: tuning.maxAckPending,
    num_replicas: replicas,
  };
}

const NOT_FOUND = new Set<number>([JetStreamApiCodes.StreamNotFound, JetStreamApiCodes.ConsumerNotFound]);

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && NOT_FOUND.has(err.code);
}

/**
 * Idempotent: creates what is missing and brings what exists to the wanted config (the replica
 * count included: a stream made with 1 on a cluster is grown to `replicas`). Several instances may
 * run it at once; a lost create race turns into an update.
 */
export async function provision(
  jsm: JetStreamManager,
  namespace: string,
  tuning: ConsumerTuning,
  replicas = 1,
): Promise<void> {
  for (const key of Object.keys(STREAMS) as StreamKey[]) {
    const cfg = streamConfig(namespace, key, replicas);
    await upsert(
      () => jsm.streams.info(cfg.name),
      () => jsm.streams.add(cfg),
      () => jsm.streams.update(cfg.name, cfg),
    );
  }
  for (const name of Object.keys(CONSUMERS) as ConsumerName[]) {
    const stream = streamName(namespace, CONSUMERS[name].stream);
    const cfg = consumerConfig(namespace, name, tuning, replicas);
    await upsert(
      () => jsm.consumers.info(stream, cfg.durable_name),
      () => jsm.consumers.add(stream, cfg),
      () => jsm.consumers.update(stream, cfg.durable_name, cfg),
    );
  }
}

async function upsert(
  info: () => Promise<unknown>,
  add: () => Promise<unknown>,
  update: () => Promise<unknown>,
): Promise<void> {
  try {
    await info();
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await add();
      return;
    } catch (addErr) {
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      // Another instance created it between our info and add: fall through to update.
    }
  }
  await update();
}
