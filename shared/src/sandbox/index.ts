export {
  type CommandResult,
  type CommandSpec,
  type Sandbox,
  type SandboxCreateSpec,
  type SandboxFile,
  SandboxMetadata,
  SessionSandboxMetadata,
  PooledSandboxMetadata,
  SANDBOX_GRACE_MS,
  type SandboxProvider,
  type SandboxSummary,
} from "./port.js";
export { relativeSegments, checkEnvs } from "./paths.js";
export { oldestFirst, checkCreateSpec, checkTimeout, MAX_SANDBOX_TIMEOUT_MS } from "./spec.js";
export { shellQuote, shellCommand } from "./shell.js";
export {
  type IsolationMode,
  isProcessRunning,
  LOCAL_BASE_ENV,
  LocalSandbox,
  LocalSandboxConfig,
  LocalSandboxProvider,
  MARKER_VAR,
  reachableSandboxRoot,
  layoutOf,
  BRIDGE_DIR_INSIDE,
} from "./local/index.js";
export {
  E2B_HOME,
  E2B_WORKSPACE,
  e2bListOptions,
  E2BSandbox,
  E2BSandboxConfig,
  E2BSandboxProvider,
  mapE2BError,
} from "./e2b/index.js";
export {
  isConcurrencyMessage,
  isProviderQuota,
  limitInMessage,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  ProviderQuotaError,
} from "./quota.js";
