import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ScenarioInput } from "../devtools/src/model/index.js";
import { LocalSandboxProvider, type Sandbox, type SandboxMetadata } from "../shared/src/sandbox/index.js";
import type { Session } from "../shared/src/index.js";
import { ESCAPE_PROBE, escapes, type ProbeReport, type ProbeTargets } from "./support/escape-probe.js";
import { eventually, logger } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

/**
 * A hostile agent against its sandbox: the probe (support/escape-probe.ts) tries the escapes that
 * once worked on this fleet (file handles to the host's root, the host's loopback with the store,
 * the bus and the api on it, raw sockets to sniff it, other sandboxes, the fleet's files, kernel
 * interfaces) and must find nothing. The same probe in an unisolated sandbox finds them, which is
 * what shows that it can.
 */
const portOf = (url: string): number =>
  Number(new URL(url.replace(/^mongodb:/, "http:").replace(/^nats:/, "http:")).port);
/** The run's store: a port on the host's loopback, or (the embedded FerretDB) a Unix socket. */
function storeTarget(uri: string): { ports: Record<string, number>; paths: Record<string, string> } {
  const host = decodeURIComponent(new URL(uri).hostname);
  return host.startsWith("/")
    ? { ports: {}, paths: { storeSocket: host } }
    : { ports: { store: portOf(uri) }, paths: {} };
}
const root = mkdtempSync(join(tmpdir(), "fleet-escape-"));
chmodSync(root, 0o711);
const hostDrop = mkdtempSync(join(tmpdir(), "fleet-escape-drop-"));
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(hostDrop, { recursive: true, force: true });
});

const metadata = (sessionId: string): SandboxMetadata => ({ fleet: "escape", sessionId, projectId: "p", attempt: "1" });

function parseReport(text: string): ProbeReport {
  const json = text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1);
  if (!json) throw new Error(`the probe printed no report: ${text.slice(0, 2_000)}`);
  return JSON.parse(json) as ProbeReport;
}

/** A neighbour: another sandbox with a secret in its workspace and a server on its agent port. */
async function neighbour(provider: LocalSandboxProvider): Promise<Sandbox> {
  const b = await provider.create({
    metadata: metadata("neighbour"),
    envs: { NEIGHBOUR_TOKEN: "n3ighb0ur" },
    timeoutMs: 120_000,
  });
  await b.writeFiles([{ path: "secret.txt", content: "the neighbour's" }]);
  await b.startBackground({
    command: "python3",
    args: ["-m", "http.server", String(b.agentPort), "--bind", "127.0.0.1"],
  });
  await eventually(
    async () =>
      (await fetch(b.url(b.agentPort), { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.ok === true,
    15_000,
  );
  return b;
}

function targets(provider: LocalSandboxProvider, b: Sandbox, extraPorts: Record<string, number> = {}): ProbeTargets {
  const store = storeTarget(inject("mongoUri"));
  return {
    ports: { nats: portOf(inject("natsUrl")), ...store.ports, neighbourAgent: b.agentPort, ...extraPorts },
    paths: {
      ...store.paths,
      repository: join(process.cwd(), "package.json"),
      neighbourWorkspace: join(b.workspace, "secret.txt"),
      neighbourSecrets: join(provider.rootDir, b.id, "envs.json"),
      hostTmp: hostDrop,
    },
    write: hostDrop,
  };
}

describe("a hostile command inside a local sandbox", () => {
  it("escapes nowhere under bubblewrap, while the same probe escapes an unisolated sandbox", async () => {
    const isolated = new LocalSandboxProvider({ rootDir: join(root, "isolated") }, logger);
    expect(isolated.isolationProblem).toBeUndefined();
    const b = await neighbour(isolated);
    const a = await isolated.create({ metadata: metadata("hostile"), envs: {}, timeoutMs: 120_000 });
    await a.writeFiles([{ path: "probe.py", content: ESCAPE_PROBE }]);
    const run = await a.run({ command: "python3", args: ["probe.py", JSON.stringify(targets(isolated, b))] });
    const report = parseReport(run.stdout + run.stderr);
    expect(escapes(report, process.getuid?.() ?? 0)).toEqual([]);
    expect(report.interfaces).toEqual(["lo"]);
    expect(report.processes).toBeLessThan(6);
    expect(existsSync(join(hostDrop, "fleet-escape-probe"))).toBe(false);
    await isolated.kill(a.id);
    await isolated.kill(b.id);

    const open = new LocalSandboxProvider({ rootDir: join(root, "open"), isolation: "none" }, logger);
    const store0 = storeTarget(inject("mongoUri"));
    const ob = await neighbour(open);
    const oa = await open.create({ metadata: metadata("hostile"), envs: {}, timeoutMs: 120_000 });
    await oa.writeFiles([{ path: "probe.py", content: ESCAPE_PROBE }]);
    const openRun = await oa.run({ command: "python3", args: ["probe.py", JSON.stringify(targets(open, ob))] });
    const found = escapes(parseReport(openRun.stdout + openRun.stderr), process.getuid?.() ?? 0);
    const storeEscape = "store" in store0.ports ? "reached host port store" : "sees host path storeSocket";
    expect(found).toEqual(
      expect.arrayContaining([
        "reached host port nats",
        storeEscape,
        "reached host port neighbourAgent",
        "wrote a file on the host",
      ]),
    );
    expect(found.length).toBeGreaterThan(8);
    await open.kill(oa.id);
    await open.kill(ob.id);
    rmSync(join(hostDrop, "fleet-escape-probe"), { force: true });
  }, 120_000);
});

describe("a hostile agent (real OpenCode, told by the model to run the probe) in a fleet session", () => {
  let b: Sandbox;

  // The targets are known only once the fleet runs: they travel with the session as a file.
  const scenario: ScenarioInput = {
    name: "escape",
    turns: [
      {
        type: "tools",
        calls: [
          {
            name: "bash",
            arguments: { command: 'python3 probe.py "$(cat targets.json)"', description: "Look around" },
          },
        ],
      },
      { type: "text", text: "Looked around." },
    ],
  };

  const fleet = useTestFleet({ prefix: "escape", model: { scenario }, services: [["api"], ["spawner"], ["poller"]] });
  beforeAll(async () => {
    b = await neighbour(fleet.provider);
  });

  it("finds no way out: not the host's files, ports or other sandboxes, only its model endpoint", {
    timeout: 120_000,
  }, async () => {
    const t = targets(fleet.provider, b, { api: portOf(fleet.apiUrl), model: portOf(fleet.model.url) });
    // The services' own files (their logs hold the fleet's traffic); the folder above the sandboxes
    // appears inside only as the empty skeleton of the sandbox's own mount points.
    t.paths.fleetLogs = join(fleet.dir, "api-0.log");
    const files = [
      { path: "probe.py", content: ESCAPE_PROBE },
      { path: "targets.json", content: JSON.stringify(t) },
    ];
    const posted = await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-escape",
      prompt: "look around",
      files,
    });
    expect(posted.status).toBe(202);
    const session = await eventually(async () => {
      const r = await api<Session>(fleet, "GET", `/v1/sessions/${posted.body.sessionId}`);
      return r.body.status === "completed" || r.body.status === "failed" ? r.body : undefined;
    }, 90_000);
    expect(session.status).toBe("completed");
    const bash = session.output?.toolCalls.find((c) => c.name === "bash");
    const report = parseReport(bash?.output ?? "");
    // The ways out the sandbox was given (its model endpoint and the callback url, on the api's
    // port) work, so the checks are real; nothing else does.
    expect(report.ports.model).toBe("connected");
    expect(report.ports.api).toBe("connected");
    delete report.ports.model;
    delete report.ports.api;
    expect(escapes(report, process.getuid?.() ?? 0)).toEqual([]);
    expect(report.interfaces).toEqual(["lo"]);
  });
});
