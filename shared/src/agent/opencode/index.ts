export { opencodeRuntime, type OpencodeRuntimeConfig } from "./runtime.js";
export {
  OpencodeAgentClient,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_EVENT_IDLE_MS,
  type OpencodeClientOptions,
} from "./client.js";
export { opencodeConfig, opencodeEnv, opencodeHomeFiles, PROVIDER_ID, OPENCODE_VERSION } from "./config.js";
export { resolveOpencodeBinary } from "./binary.js";
export { toAgentEvent } from "./events.js";
export { contentsFromPatch } from "./patch.js";
export { messageId } from "./ids.js";
