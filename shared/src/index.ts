export * from "./contracts/index.js";
export * from "./errors/index.js";
export * from "./config/index.js";
export * from "./log/index.js";
export * from "./lifecycle/index.js";
export * from "./bus/index.js";
export * from "./store/index.js";
