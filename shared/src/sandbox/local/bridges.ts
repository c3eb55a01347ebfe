import { FleetError } from "../../errors/index.js";
import { BRIDGE_DIR_INSIDE } from "./isolation.js";

/**
 * The only ways across an isolated sandbox's network namespace, each a pair of socat processes
 * joined by a Unix socket in the sandbox's bridge folder:
 * - in: the host's 127.0.0.1:<agentPort> (where the fleet reaches the agent server) to the same
 *   port on the sandbox's own loopback;
 * - out: for each allowed endpoint on the host's loopback (the model server or gateway, the fleet's
 *   callback url), the same port on the sandbox's loopback to that endpoint.
 * The host side runs outside the sandbox as its user; the sandbox side runs inside, in the agent
 * server's namespaces. Nothing else of the host's network is reachable.
 */

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** A loopback endpoint a sandbox may reach, by port (the same port inside and outside). */
export function egressPort(url: string): number {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FleetError("sandbox", `invalid egress url ${JSON.stringify(url)}`, { retryable: false });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new FleetError("sandbox", `egress url ${parsed.origin} must be http or https`, { retryable: false });
  }
  if (!LOOPBACK_HOSTS.has(parsed.hostname)) {
    throw new FleetError(
      "sandbox",
      `isolated local sandboxes reach only endpoints on this host's loopback, not ${parsed.origin}: ` +
        "serve the model through a fleet endpoint on this host, or set FLEET_SANDBOX_ISOLATION=none (development only)",
      { retryable: false },
    );
  }
  const port = Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
  if (port < 1024) {
    throw new FleetError(
      "sandbox",
      `egress port ${port} of ${parsed.origin}: an unprivileged sandbox can only bind ports >= 1024`,
      { retryable: false },
    );
  }
  return port;
}

export const AGENT_SOCKET = "agent.sock";
export const egressSocket = (port: number): string => `egress-${port}.sock`;

/** Host side of the way in: listens where the fleet expects the agent, forwards into the bridge folder. */
export function hostIngressArgs(agentPort: number): string[] {
  return [`TCP-LISTEN:${agentPort},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${AGENT_SOCKET}`];
}

/** Host side of one way out: a socket only the sandbox's user may connect to, forwarded to the endpoint. */
export function hostEgressArgs(port: number): string[] {
  return [`UNIX-LISTEN:${egressSocket(port)},fork,unlink-early,mode=600`, `TCP:127.0.0.1:${port}`];
}

/**
 * Wraps a background command so that the sandbox side of every bridge runs in its namespaces
 * first. The script is fixed; ports and the command travel as positional parameters, never as
 * shell text.
 */
const INSIDE_SCRIPT = [
  `b=${BRIDGE_DIR_INSIDE}; p=$1; shift`,
  'socat "UNIX-LISTEN:$b/agent.sock,fork,unlink-early" "TCP:127.0.0.1:$p" &',
  'while [ "$1" != "--" ]; do socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$b/egress-$1.sock" & shift; done',
  'shift; exec "$@"',
].join("\n");

export function bridgedCommand(
  agentPort: number,
  egress: readonly number[],
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  return {
    command: "/bin/sh",
    args: ["-c", INSIDE_SCRIPT, "fleet-bridge", String(agentPort), ...egress.map(String), "--", command, ...args],
  };
}
