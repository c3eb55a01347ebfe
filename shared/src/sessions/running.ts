import { SCHEMA_VERSION, type Session, type SessionRunning } from "../contracts/index.js";

/**
 * The session.running event of a session that has its sandbox and agent session, or undefined when
 * it has neither yet. `extra` carries what only one publisher knows: the log's sequence from the
 * setup that wrote it, or the round of a republish after a lapsed watch lease.
 */
export function runningEvent(
  s: Session,
  extra: Pick<SessionRunning, "logSeq" | "rewatch"> & { at?: number } = {},
): SessionRunning | undefined {
  if (!s.sandbox || !s.agentSessionId) return undefined;
  const { at = Date.now(), ...rest } = extra;
  return {
    v: SCHEMA_VERSION,
    sessionId: s.id,
    projectId: s.projectId,
    sandboxId: s.sandbox.id,
    ...(s.sandbox.host ? { sandboxHost: s.sandbox.host } : {}),
    agentSessionId: s.agentSessionId,
    attempt: s.attempt,
    at,
    ...(rest.logSeq !== undefined ? { logSeq: rest.logSeq } : {}),
    ...(rest.rewatch !== undefined ? { rewatch: rest.rewatch } : {}),
  };
}
