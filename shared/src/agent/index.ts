export * from "./port.js";
export * from "./opencode/index.js";
