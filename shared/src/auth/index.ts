export * from "./api-keys.js";
export * from "./callback-tokens.js";
