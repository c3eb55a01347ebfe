import { existsSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { FleetError } from "../../errors/index.js";
import { egressSocket, hostEgressArgs, hostIngressArgs } from "./bridges.js";
import type { ResolvedLocalConfig } from "./config.js";
import { startDetached, timeoutArgs } from "./exec.js";
import { dropToUser } from "./isolation.js";
import { MARKER_VAR, terminateSandbox } from "./procs.js";
import type { ProcessEntry, SandboxLayout } from "./registry.js";

const READY_MS = 5_000;

/**
 * Starts the host side of an isolated sandbox's bridges (bridges.ts): detached, marked as the
 * sandbox's own processes (so every killer ends them with it), bounded by its hard timeout, run as
 * the sandbox's user (outside its namespaces), and running in its bridge folder, whose relative socket names survive the rename into the registry.
 * Resolves once the fleet's way in listens and every way out has its socket.
 */
export async function startBridges(
  config: ResolvedLocalConfig,
  layout: SandboxLayout,
  id: string,
  opts: { agentPort: number; egress: readonly number[]; uid: number; endAt: number },
): Promise<ProcessEntry[]> {
  const { socat, setpriv } = config.tools;
  if (!socat || !setpriv)
    throw new FleetError("config", "socat and setpriv are needed (Debian packages socat, util-linux)", {
      retryable: false,
    });
  const env = { PATH: config.path, [MARKER_VAR]: id };
  const timeout = timeoutArgs(config.timeoutBin, Math.max(1, opts.endAt - Date.now()));
  const log = join(layout.logs, "bridges.log");
  const entries: ProcessEntry[] = [];
  const start = async (args: string[], what: string): Promise<void> => {
    // As the sandbox's user: the sockets it connects to sit in a folder the sandbox may change, so a
    // link planted there leads nowhere the sandbox's user could not go anyway.
    const pgid = await startDetached(
      [...timeout, ...dropToUser(setpriv, opts.uid), socat, "-lpfleet-bridge", ...args],
      { cwd: layout.bridge, env, logFile: log },
    );
    entries.push({ pgid, command: `socat (${what})`, log: "bridges.log", startedAt: Date.now(), bridge: true });
  };
  try {
    await start(hostIngressArgs(opts.agentPort), `in :${opts.agentPort}`);
    for (const port of opts.egress) await start(hostEgressArgs(port), `out :${port}`);
    const until = Date.now() + READY_MS;
    const ready = async (): Promise<boolean> =>
      opts.egress.every((p) => existsSync(join(layout.bridge, egressSocket(p)))) && (await listening(opts.agentPort));
    while (!(await ready())) {
      if (Date.now() > until)
        throw new FleetError("sandbox", `sandbox ${id}: its network bridges did not start (see ${log})`, {
          retryable: true,
        });
      await new Promise((r) => setTimeout(r, 20));
    }
    return entries;
  } catch (err) {
    await terminateSandbox(
      id,
      entries.map((e) => e.pgid),
      0,
    );
    throw err;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
