/**
 * The wire contract (bus messages, stored documents, the lifecycle table) lives in the public client
 * package, which outside systems install; the fleet builds on the same definitions.
 */
export * from "@session-fleet/client/contracts";
