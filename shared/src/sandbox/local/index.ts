export { LocalSandboxProvider } from "./provider.js";
export { LocalSandbox } from "./sandbox.js";
export { LocalSandboxConfig, reachableSandboxRoot } from "./config.js";
export { LOCAL_BASE_ENV } from "./exec.js";
export { isProcessRunning, MARKER_VAR } from "./procs.js";
export type { IsolationMode } from "./isolation.js";
export { layoutOf, type SandboxLayout } from "./registry.js";
export { BRIDGE_DIR_INSIDE } from "./isolation.js";
