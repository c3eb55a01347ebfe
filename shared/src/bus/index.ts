export type { ArchiveBacklog, BatchConsumeOptions, Bus, ConsumeOptions, DeadLetterSink, Handler, MessageContext, PublishOptions, PublishResult, Subscription } from "./port.js";
export { connectBus, type NatsBusConfig, type NatsBusDeps } from "./nats-bus.js";
export { backoffMs, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { consumerName, DEFAULT_TUNING, type ConsumerTuning } from "./provision.js";
