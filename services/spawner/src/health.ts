import { FleetError, type AgentClient, type Sandbox } from "@fleet/shared";

/**
 * Polls the agent's health fast at first (it is usually up within a few seconds), then slower, up
 * to `readyMs`. Each probe is short: a port that accepts connections before the server is ready
 * can hold a request for minutes. Gives up at once when the sandbox itself is gone.
 */
export async function waitHealthy(client: AgentClient, sandbox: Sandbox, readyMs: number): Promise<void> {
  const started = Date.now();
  for (let probe = 0; ; probe++) {
    const elapsed = Date.now() - started;
    if (elapsed > readyMs) {
      throw new FleetError("agent", `agent server did not become healthy within ${Math.round(readyMs / 1000)} s`);
    }
    if (await client.health(Math.min(3_000, Math.max(500, readyMs - elapsed))).catch(() => false)) return;
    if (probe % 10 === 9 && !(await sandbox.isAlive())) {
      throw new FleetError("sandbox", "the sandbox ended before the agent server became healthy");
    }
    await new Promise((r) => setTimeout(r, elapsed < 3_000 ? 50 : 250));
  }
}
