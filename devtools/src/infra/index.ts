export { startInfra, writeInfraState, readInfraState, infraStatus, stopInfraFromState } from "./launcher.js";
export type { Infra, InfraOptions, InfraState, InfraHealth, StoreKind } from "./launcher.js";
export {
  ensureFerretDb,
  ensureNatsServer,
  ensureUpstreamFerretDb,
  FERRETDB_VERSION,
  NATS_SERVER_VERSION,
} from "./tools.js";
export { startProcess, stopPid, isAlive, logTail, ownLog, type ManagedProcess, type ProcessSpec } from "./process.js";
export { freePort } from "./ports.js";
export { repoRoot, defaultToolsDir } from "./paths.js";
export { pingMongo, dockerAnswers } from "./servers.js";
export { startService, type FleetProcessOptions, type RunningService, type ServiceName } from "./services.js";
