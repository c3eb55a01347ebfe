export * from "./common.js";
export * from "./session.js";
export * from "./events.js";
export * from "./catalog.js";
export { jsonSchemas } from "./json-schema.js";
