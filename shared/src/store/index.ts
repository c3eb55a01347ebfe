export type {
  ActiveCount,
  ApiKeyStore,
  CardFileStore,
  CreateResult,
  DeadLetterStore,
  LogLineStore,
  Page,
  PoolClaim,
  PoolEntry,
  PoolStatus,
  PoolStore,
  SessionDocStore,
  SessionPatch,
  SessionStore,
  SlotStore,
  TransitionRequest,
  UsageStore,
  WatchLease,
} from "./port.js";
export { MongoSessionStore, type MongoStoreConfig } from "./mongo-store.js";
export { LearnedCap, UNBOUNDED_SLOTS } from "./slots.js";
export { decodeCursor, encodeCursor } from "./cursor.js";
export { poolSummary, STALE_POOL_REPORT_MS } from "./pool-summary.js";
export { poolSlotHolder, poolSlotOwner } from "./pool.js";
