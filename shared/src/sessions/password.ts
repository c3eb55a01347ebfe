import { createHmac } from "node:crypto";

/**
 * The agent server's password for one attempt of one session. Derived from a fleet secret rather than
 * stored, so it is never written to the store, the bus or a log, and every fleet instance that holds
 * the secret (spawner, poller, watchdog) can reach the agent. Unpredictable without the secret.
 */
export function agentPassword(secret: string, sessionId: string, attempt: number): string {
  return createHmac("sha256", secret).update(`agent-password\0${sessionId}\0${attempt}`).digest("base64url");
}

/**
 * The password of a warm-pool agent server, which starts before any session exists. Its own per
 * sandbox (no two pooled servers share one: OpenCode reads it only at start), derived like a
 * session's so a spawner or poller of any instance can reach the agent once a session claimed it.
 */
export function pooledAgentPassword(secret: string, sandboxId: string): string {
  return createHmac("sha256", secret).update(`pooled-agent-password\0${sandboxId}`).digest("base64url");
}
