export { E2BSandboxProvider, E2BSandboxConfig, e2bListOptions } from "./provider.js";
export { E2BSandbox, E2B_HOME, E2B_WORKSPACE } from "./sandbox.js";
export { mapE2BError } from "./errors.js";
