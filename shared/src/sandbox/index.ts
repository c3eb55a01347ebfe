export * from "./port.js";
export { relativeSegments, checkEnvs } from "./paths.js";
export { oldestFirst, checkCreateSpec, MAX_SANDBOX_TIMEOUT_MS } from "./spec.js";
export { shellQuote, shellCommand } from "./shell.js";
export * from "./local/index.js";
export * from "./e2b/index.js";
