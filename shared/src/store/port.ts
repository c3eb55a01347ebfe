import type { ApiKeyStore } from "./api-keys.js";
import type { CardFileStore } from "./card-files.js";
import type { DeadLetterStore } from "./dead-letters.js";
import type { LogLineStore } from "./log-lines.js";
import type { SessionDocStore } from "./sessions.js";
import type { PoolStore } from "./pool.js";
import type { SlotStore } from "./slots.js";
import type { UsageStore } from "./usage.js";

export type { ApiKeyStore } from "./api-keys.js";
export type { CardFileStore } from "./card-files.js";
export type { DeadLetterStore } from "./dead-letters.js";
export type { LogLineStore } from "./log-lines.js";
export type {
  ActiveCount,
  CreateResult,
  Page,
  SessionDocStore,
  SessionPatch,
  TransitionRequest,
  WatchLease,
} from "./sessions.js";
export type { PoolClaim, PoolEntry, PoolStatus, PoolStore } from "./pool.js";
export type { LearnedCap, SlotStore } from "./slots.js";
export type { UsageStore } from "./usage.js";

/**
 * The store as services wire it: one port per collection, over one connection. A caller that needs
 * one concept may depend on that port alone (e.g. `CardFileStore`).
 */
export interface SessionStore
  extends SessionDocStore,
    LogLineStore,
    SlotStore,
    PoolStore,
    ApiKeyStore,
    CardFileStore,
    DeadLetterStore,
    UsageStore {
  /** Creates indexes; safe to run from every instance at start. */
  init(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
