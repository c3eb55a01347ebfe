export type {
  ArchiveBacklog,
  BatchConsumeOptions,
  Bus,
  ConsumerBacklog,
  ConsumeOptions,
  DeadLetterSink,
  Handler,
  MessageContext,
  PublishOptions,
  PublishResult,
  Subscription,
} from "./port.js";
export { natsServers } from "./servers.js";
export { connectBus, type NatsBusConfig, type NatsBusDeps } from "./nats-bus.js";
export { backoffMs, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { consumerName, DEFAULT_TUNING, type ConsumerTuning } from "./provision.js";
export {
  natsAuthConfig,
  generateNatsUsers,
  rolePermissions,
  provisionOutsideFeed,
  FEED_API_PREFIX,
  FLEET_ACCOUNT,
  OUTSIDE_ACCOUNT,
  type NatsRole,
  type NatsUser,
  type NatsPermissions,
} from "./nats-auth.js";
export { asyncApiDocument, subjectAllowed } from "./asyncapi.js";
export { DEPLOY_ROLES, natsAccountsTemplate, natsPasswordVariable } from "./nats-accounts.js";
