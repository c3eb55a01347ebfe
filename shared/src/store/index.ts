export type {
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
export { decodeCursor, encodeCursor } from "./cursor.js";
