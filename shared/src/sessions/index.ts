export { agentPassword } from "./password.js";
export { buildPromptText } from "./prompt.js";
export { toolLabel, toolLines, type ToolLine } from "./log-lines.js";
export { extractOutput, extractUsage, agentFinished, type Usage } from "./extract.js";
export { SessionLogWriter, type NewLine, type SessionLogDeps } from "./session-log.js";
export { endSession, type EndDeps, type EndOutcome } from "./end.js";
export { saveCardFiles } from "./card-files.js";
export { workspaceChanges, asCardFiles, type WorkspaceChanges } from "./workspace.js";
