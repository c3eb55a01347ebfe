export type { CreateResult, Page, SessionPatch, SessionStore, TransitionRequest } from "./port.js";
export { MongoSessionStore, type MongoStoreConfig } from "./mongo-store.js";
export { decodeCursor, encodeCursor } from "./cursor.js";
