import { SCHEMA_VERSION, type RunningSession, type Session, type SessionRunning } from "../contracts/index.js";

/**
 * The session.running event of a session that has its sandbox and agent session, or undefined when
 * it has neither yet. `extra` carries what only one publisher knows: the log's sequence and the
 * document from the setup that wrote them, or the round of a republish after a lapsed watch lease.
 */
export function runningEvent(
  s: Session,
  extra: Pick<SessionRunning, "logSeq" | "rewatch"> & { at?: number; withDocument?: boolean } = {},
): SessionRunning | undefined {
  if (!s.sandbox || !s.agentSessionId) return undefined;
  const { at = Date.now(), withDocument, ...rest } = extra;
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
    ...(withDocument ? { session: runningSession(s) } : {}),
  };
}

/** The document a watch starts from: the session without its prompt (which may be large) and the api's usage. */
function runningSession(s: Session): RunningSession {
  const { prompt: _prompt, usage: _usage, ...rest } = s;
  return rest;
}
