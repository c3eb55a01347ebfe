import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { CONSUMERS, feedStreamName, streamName, type ConsumerName } from "@fleet/shared";
import {
  DEPLOY_ROLES,
  FLEET_ACCOUNT,
  consumerName,
  natsAccountsTemplate,
  natsPasswordVariable,
} from "@fleet/shared/bus";
import { createMetrics, poolMetrics } from "@fleet/shared/metrics";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { ApiConfig } from "../services/api/src/config.js";
import { GatewayConfig } from "../services/gateway/src/config.js";
import { PollerConfig } from "../services/poller/src/config.js";
import { SpawnerConfig } from "../services/spawner/src/config.js";
import { WatchdogConfig } from "../services/watchdog/src/config.js";
import { defaultToolsDir, ensureNatsServer, freePort, startProcess } from "../devtools/src/infra/index.js";
import { eventually } from "./support/fixtures.js";

/**
 * deploy/: every Kubernetes manifest validated against the Kubernetes and KEDA schemas (offline:
 * the kubernetes-models packages ship them compiled), plus what the schemas cannot see: each
 * service deployed with probes, limits and a non-root context; every setting a service is given is
 * one its config reads; every fleet consumer autoscaled on its real stream, durable and account;
 * no secret inline in compose.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEPLOY = join(ROOT, "deploy");
const run = promisify(execFile);
const SERVICES = readdirSync(join(ROOT, "services")).sort();

type Obj = Record<string, unknown> & { apiVersion?: string; kind?: string; metadata?: { name?: string } };

/** A schema per kind the manifests may hold: anything else is refused, never passed unchecked. */
const MODELS: Record<string, (o: Obj) => { validate(): void }> = {
  "apps/v1/Deployment": (o) => new Deployment(o as never),
  "v1/Service": (o) => new Service(o as never),
  "v1/ConfigMap": (o) => new ConfigMap(o as never),
  "batch/v1/Job": (o) => new Job(o as never),
  "keda.sh/v1alpha1/ScaledObject": (o) => new ScaledObject(o as never),
};

const CONFIGS: Record<string, { shape: Record<string, unknown> }> = {
  api: ApiConfig,
  spawner: SpawnerConfig,
  poller: PollerConfig,
  watchdog: WatchdogConfig,
  gateway: GatewayConfig,
};
/** Read by the cluster-aware provisioning (replicated streams); ignored by a fleet that predates it. */
const FORWARD_SETTINGS = new Set(["FLEET_STREAM_REPLICAS"]);

function loadManifests(): Array<{ file: string; doc: Obj }> {
  const dir = join(DEPLOY, "k8s");
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(dir, file), "utf8")).map((d) => {
        if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
        return { file, doc: d.toJS() as Obj };
      }),
    );
}

/** Schema problems of one manifest (empty when it is valid). */
function schemaProblems(doc: Obj): string[] {
  const model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!model) return [`no schema for ${doc.apiVersion} ${doc.kind}: add one to MODELS`];
  try {
    model(doc).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { port: string | number } };
  readinessProbe?: { httpGet?: { port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean };
}
interface DeploymentDoc {
  metadata: { name: string };
  spec: {
    template: {
      spec: { securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }; containers: Container[] };
    };
  };
}

/** What the schemas allow but the fleet does not: a service deployed without its probes, limits or non-root context. */
function deploymentProblems(d: DeploymentDoc, configMaps: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const pod = d.spec.template.spec;
  const say = (m: string) => out.push(`${d.metadata.name}: ${m}`);
  if (pod.securityContext?.runAsNonRoot !== true || !pod.securityContext.runAsUser) say("not runAsNonRoot with a uid");
  for (const c of pod.containers) {
    const service = c.args?.[0] ?? "";
    if (!SERVICES.includes(service) || d.metadata.name !== `fleet-${service}`) say(`runs '${service}'`);
    const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    for (const probe of [c.livenessProbe, c.readinessProbe]) {
      if (!probe?.httpGet || !ports.has(probe.httpGet.port)) say("a probe missing or on an undeclared port");
    }
    if (!c.resources?.requests?.cpu || !c.resources.requests.memory || !c.resources.limits?.memory) {
      say("no cpu and memory requests or memory limit");
    }
    if (c.securityContext?.allowPrivilegeEscalation !== false || c.securityContext.readOnlyRootFilesystem !== true) {
      say("privilege escalation allowed or root filesystem writable");
    }
    const known = CONFIGS[service]?.shape ?? {};
    for (const e of c.env ?? []) {
      if (!(e.name in known)) say(`sets ${e.name}, which ${service} does not read`);
    }
    for (const ref of c.envFrom ?? []) {
      if (ref.configMapRef && !configMaps.has(ref.configMapRef.name)) say(`no ConfigMap ${ref.configMapRef.name}`);
      if (ref.secretRef && ref.secretRef.name !== `fleet-${service}`) say(`reads the Secret ${ref.secretRef.name}`);
    }
    if (!c.envFrom?.some((r) => r.secretRef)) say("reads no Secret");
    const natsUser = (c.env as Array<{ name: string; value?: string }> | undefined)?.find(
      (e) => e.name === "NATS_USER",
    );
    if (natsUser?.value !== `fleet-${service}`) say(`connects to NATS as ${natsUser?.value}, not fleet-${service}`);
  }
  return out;
}

interface Trigger {
  type: string;
  metadata: Record<string, string>;
}

/** Fleet consumers no ScaledObject scales on their real stream, durable and account. */
function unscaledConsumers(scaledObjects: Obj[]): string[] {
  const triggers = scaledObjects.flatMap((s) => (s.spec as { triggers: Trigger[] }).triggers);
  return (Object.keys(CONSUMERS) as ConsumerName[]).filter(
    (c) =>
      !triggers.some(
        (t) =>
          t.type === "nats-jetstream" &&
          t.metadata.account === FLEET_ACCOUNT &&
          t.metadata.stream === streamName("", CONSUMERS[c].stream) &&
          t.metadata.consumer === consumerName("", c),
      ),
  );
}

describe("deploy/", () => {
  const manifests = loadManifests();
  const ofKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
  const configMaps = new Set(ofKind("ConfigMap").map((c) => c.metadata?.name ?? ""));
  const deployments = ofKind("Deployment") as unknown as DeploymentDoc[];
  const scaledObjects = ofKind("ScaledObject");

  it("every manifest is valid against the Kubernetes and KEDA schemas", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(SERVICES.length + 4);
    const problems = manifests.flatMap(({ file, doc }) =>
      schemaProblems(doc).map((p) => `${file} ${doc.kind}/${doc.metadata?.name}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it("a broken manifest is refused", () => {
    const spawner = manifests.find((m) => m.doc.kind === "Deployment" && m.doc.metadata?.name === "fleet-spawner");
    const scaled = scaledObjects[0];
    if (!spawner || !scaled) throw new Error("the spawner's Deployment and a ScaledObject are expected");
    const broken = structuredClone(spawner.doc) as Obj & { spec: Record<string, unknown> };
    broken.spec.replicas = "two";
    expect(schemaProblems(broken).join()).toMatch(/replicas must be integer/);
    const { scaleTargetRef: _dropped, ...rest } = scaled.spec as Record<string, unknown>;
    expect(schemaProblems({ ...scaled, spec: rest }).join()).toMatch(/scaleTargetRef/);
    expect(schemaProblems({ ...scaled, kind: "ScaledThing" }).join()).toMatch(/no schema/);
    const noProbe = structuredClone(spawner.doc) as unknown as DeploymentDoc;
    delete noProbe.spec.template.spec.containers[0]?.livenessProbe;
    expect(deploymentProblems(noProbe, configMaps).join()).toMatch(/probe missing/);
  });

  it("every service is deployed with probes, limits, a non-root context and only settings it reads", () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(SERVICES.map((s) => `fleet-${s}`));
    expect(deployments.flatMap((d) => deploymentProblems(d, configMaps))).toEqual([]);
    const shared = ofKind("ConfigMap").flatMap((c) => Object.keys((c as { data?: object }).data ?? {}));
    const unread = shared.filter((k) => !FORWARD_SETTINGS.has(k) && !Object.values(CONFIGS).some((c) => k in c.shape));
    expect(unread).toEqual([]);
  });

  it("each fleet consumer is autoscaled by KEDA on its own stream, durable and account", () => {
    expect(unscaledConsumers(scaledObjects)).toEqual([]);
    const targets = new Set(deployments.map((d) => d.metadata.name));
    for (const s of scaledObjects) {
      expect(targets).toContain((s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name);
    }
    // A trigger naming a consumer the fleet does not have leaves that consumer unscaled.
    const renamed = structuredClone(scaledObjects).map((s) => {
      for (const t of (s.spec as { triggers: Trigger[] }).triggers)
        if (t.metadata.consumer === "archiver") t.metadata.consumer = "archive";
      return s;
    });
    expect(unscaledConsumers(renamed)).toEqual(["archiver"]);
  });

  it("a Prometheus trigger queries only metrics the services register", async () => {
    const registry = createMetrics("keda-test").registry;
    poolMetrics(registry);
    const registered = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const queries = scaledObjects
      .flatMap((s) => (s.spec as { triggers: Trigger[] }).triggers)
      .filter((t) => t.type === "prometheus")
      .map((t) => t.metadata.query ?? "");
    expect(queries).not.toEqual([]);
    const named = queries.flatMap((q) => q.match(/\bfleet_[a-z0-9_]+/g) ?? []);
    expect(named).not.toEqual([]);
    expect(named.filter((n) => !registered.has(n))).toEqual([]);
  });

  it("the NATS accounts file is natsAuthConfig's, and a nats-server run on it admits each role with its password only", async () => {
    const file = readFileSync(join(DEPLOY, "nats", "accounts.conf"), "utf8");
    expect(
      file.replace(/^#.*\n/gm, ""),
      "deploy/nats/accounts.conf is stale: npx tsc -b && npm run nats-accounts",
    ).toBe(natsAccountsTemplate());
    const dir = mkdtempSync(join(tmpdir(), "fleet-deploy-nats-"));
    const port = await freePort();
    copyFileSync(join(DEPLOY, "nats", "accounts.conf"), join(dir, "accounts.conf"));
    writeFileSync(
      join(dir, "nats.conf"),
      `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\ninclude ./accounts.conf\n`,
    );
    const passwords = Object.fromEntries(DEPLOY_ROLES.map((r) => [natsPasswordVariable(r), `pw-${r}-${port}`]));
    const server = startProcess({
      name: "deploy-nats",
      command: await ensureNatsServer(defaultToolsDir()),
      args: ["-c", join(dir, "nats.conf")],
      logFile: join(dir, "nats.log"),
      env: { ...process.env, ...passwords },
    });
    const url = `nats://127.0.0.1:${port}`;
    const as = (role: string, pass: string) => connect({ servers: url, user: `fleet-${role}`, pass, reconnect: false });
    try {
      await eventually(() => as("api", `pw-api-${port}`).then((nc) => nc.close().then(() => true)));
      await Promise.all(DEPLOY_ROLES.map((r) => as(r, `pw-${r}-${port}`).then((nc) => nc.close())));
      await expect(as("spawner", `pw-api-${port}`)).rejects.toThrow(/Authorization/i);
      // The image's provision-feed, as the fleet's api user: the outside account gets its stream.
      await run(process.execPath, [join(DEPLOY, "provision-feed.mjs")], {
        env: {
          ...process.env,
          NATS_URL: url,
          NATS_USER: "fleet-api",
          NATS_PASSWORD: `pw-api-${port}`,
          FLEET_NAMESPACE: "",
        },
      });
      const outside = await as("outside", `pw-outside-${port}`);
      const info = await (await jetstreamManager(outside)).streams.info(feedStreamName(""));
      expect(info.config.name).toBe(feedStreamName(""));
      await outside.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("compose runs every service from the one image, a three-node NATS cluster and MongoDB, with no secret inline", () => {
    const compose = parseYaml(readFileSync(join(DEPLOY, "compose.yaml"), "utf8"), { merge: true }) as {
      services: Record<string, { command?: string[]; environment?: Record<string, string>; env_file?: string[] }>;
    };
    const names = Object.keys(compose.services);
    expect(names.filter((n) => /^nats-\d$/.test(n))).toHaveLength(3);
    expect(names).toContain("mongo");
    const secretFiles = readdirSync(join(DEPLOY, "secrets")).filter((f) => f.endsWith(".env.example"));
    const secretNames = new Set(
      secretFiles.flatMap((f) =>
        [...readFileSync(join(DEPLOY, "secrets", f), "utf8").matchAll(/^(?:# )?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]),
      ),
    );
    expect(secretNames).toContain("FLEET_AGENT_SECRET");
    for (const service of SERVICES) {
      const s = compose.services[service];
      expect(s?.command).toEqual([service]);
      expect(s?.env_file).toEqual([`./secrets/${service}.env`]);
      expect(secretFiles).toContain(`${service}.env.example`);
      const env = Object.keys(s?.environment ?? {});
      expect(env.filter((k) => secretNames.has(k))).toEqual([]);
      const known = CONFIGS[service]?.shape ?? {};
      expect(env.filter((k) => !(k in known) && !FORWARD_SETTINGS.has(k))).toEqual([]);
    }
    // Each service as its own NATS user; every node reads all the users' passwords; the feed is provisioned.
    for (const service of SERVICES) expect(compose.services[service]?.environment?.NATS_USER).toBe(`fleet-${service}`);
    for (const node of names.filter((n) => /^nats-\d$/.test(n))) {
      expect(compose.services[node]?.env_file).toEqual(["./secrets/nats.env"]);
    }
    const natsSecrets = readFileSync(join(DEPLOY, "secrets", "nats.env.example"), "utf8");
    for (const role of DEPLOY_ROLES) expect(natsSecrets).toContain(`${natsPasswordVariable(role)}=`);
    expect(compose.services["provision-feed"]?.command).toEqual(["provision-feed"]);
    // The examples carry no secret value: only the store's address, without credentials.
    for (const f of secretFiles) {
      const set = [...readFileSync(join(DEPLOY, "secrets", f), "utf8").matchAll(/^([A-Z0-9_]+)=(.+)$/gm)];
      expect(set.filter((m) => m[1] !== "MONGODB_URI" || m[2]?.includes("@"))).toEqual([]);
    }
  });
});
