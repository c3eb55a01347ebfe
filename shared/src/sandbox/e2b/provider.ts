import type { E2B, SandboxListOpts } from "@e2b/code-interpreter";
import { z } from "zod";
import { FleetError, errorMessage } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import { checkEnvs, joinPosix } from "../paths.js";
import { SandboxMetadata, type SandboxCreateSpec, type SandboxProvider, type SandboxSummary } from "../port.js";
import { shellCommand, shellQuote } from "../shell.js";
import { checkTimeout, oldestFirst } from "../spec.js";
import { isNotFound, mapE2BError } from "./errors.js";
import { E2B_WORKSPACE, E2BSandbox } from "./sandbox.js";

export const E2BSandboxConfig = z.object({
  apiKey: z.string({ error: "an E2B API key is required" }).min(1, "an E2B API key is required"),
  template: z.string().min(1),
  /** Where the agent server listens inside every sandbox (E2B sandboxes do not share ports). */
  agentPort: z.number().int().min(1).max(65535).default(4096),
  domain: z.string().min(1).optional(),
  /** The control plane (E2B_API_URL), for a self-hosted or local E2B. */
  apiUrl: z.url().optional(),
  /** One URL for all traffic to sandboxes, routed by the SDK's E2b-Sandbox-Id/-Port headers (E2B_SANDBOX_URL). */
  sandboxUrl: z.url().optional(),
  /**
   * A sandbox port's URL, `{sandboxId}` and `{port}` filled in (E2B_PORT_URL), for a sandbox proxy
   * that clients without those headers (the agent client) must reach by path. Default: E2B's own
   * `https://<port>-<sandboxId>.<domain>`.
   */
  portUrl: z
    .string()
    .refine((t) => t.includes("{sandboxId}") && t.includes("{port}"), "portUrl needs {sandboxId} and {port}")
    .optional(),
  requestTimeoutMs: z.number().int().positive().optional(),
  /** The longest timeout the account's plan allows one create or setTimeout (Hobby: 1 h, Pro: 24 h). */
  maxTimeoutMs: z.number().int().positive().default(3_600_000),
});
export type E2BSandboxConfig = z.input<typeof E2BSandboxConfig>;

type SdkClient = InstanceType<typeof E2B>;
const loadSdk = () => import("@e2b/code-interpreter");
let sdkModule: ReturnType<typeof loadSdk> | undefined;

/** What the SDK's list pages hold, checked before the fleet trusts it. */
const ListedSandbox = z.object({
  sandboxId: z.string().min(1),
  metadata: z.record(z.string(), z.string()).default({}),
  startedAt: z.coerce.date(),
  endAt: z.coerce.date().optional(),
});

const SANDBOX_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_PAGES = 1_000;

/** The SDK's list query for a port filter: keys with a value, AND-ed by the API. */
export function e2bListOptions(filter: Partial<Record<string, string>> = {}): SandboxListOpts {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(filter)) if (typeof v === "string") metadata[k] = v;
  return { query: { metadata }, limit: 100 };
}

/** Drains a paginator; bounded, because a service that keeps saying "more" must not hang a reaper. */
export async function collectPages<T>(
  paginator: { hasNext: boolean; nextItems(): Promise<T[]> },
  maxPages = MAX_PAGES,
): Promise<T[]> {
  const items: T[] = [];
  for (let page = 0; paginator.hasNext; page++) {
    if (page >= maxPages)
      throw new FleetError("sandbox", `E2B list returned more than ${maxPages} pages`, { retryable: true });
    items.push(...(await paginator.nextItems()));
  }
  return items;
}

/** One shell line that turns the workspace into a git repository with an empty first commit. */
export function workspaceInitLine(workspace = E2B_WORKSPACE): string {
  const git = (...args: string[]) => shellCommand("git", ["-C", workspace, ...args]);
  const init = [
    git("init", "-q", "-b", "main"),
    git("config", "user.name", "Fleet Agent"),
    git("config", "user.email", "agent@fleet.invalid"),
    git("config", "commit.gpgsign", "false"),
    git("commit", "-q", "--allow-empty", "-m", "Initial empty commit"),
  ].join(" && ");
  return `${shellCommand("mkdir", ["-p", workspace])} && { [ -d ${shellQuote(joinPosix(workspace, [".git"]))} ] || { ${init}; }; }`;
}

/** Sandboxes in E2B's cloud: the hard timeout, metadata and listing are E2B's own. */
export class E2BSandboxProvider implements SandboxProvider {
  readonly name = "e2b";
  private readonly config: z.output<typeof E2BSandboxConfig>;
  private client: SdkClient | undefined;
  readonly maxTimeoutMs: number;

  constructor(
    config: E2BSandboxConfig,
    private readonly logger: Logger,
  ) {
    const parsed = E2BSandboxConfig.safeParse(config);
    if (!parsed.success)
      throw new FleetError("config", `e2b sandbox provider: ${z.prettifyError(parsed.error)}`, { retryable: false });
    this.config = parsed.data;
    this.maxTimeoutMs = parsed.data.maxTimeoutMs;
  }

  /** The SDK loads on first use, so fleets on the local provider never pay for it. */
  private async sdk(): Promise<SdkClient["Sandbox"]> {
    if (!this.client) {
      sdkModule ??= loadSdk();
      const { E2B } = await sdkModule;
      const { apiKey, domain, apiUrl, sandboxUrl, requestTimeoutMs } = this.config;
      this.client = new E2B({
        apiKey,
        ...(domain ? { domain } : {}),
        ...(apiUrl ? { apiUrl } : {}),
        ...(sandboxUrl ? { sandboxUrl } : {}),
        ...(requestTimeoutMs ? { requestTimeoutMs } : {}),
      });
    }
    return this.client.Sandbox;
  }

  async create(spec: SandboxCreateSpec): Promise<E2BSandbox> {
    const metadata = SandboxMetadata.safeParse(spec.metadata);
    if (!metadata.success)
      throw new FleetError("sandbox", `invalid sandbox metadata: ${z.prettifyError(metadata.error)}`, {
        retryable: false,
      });
    checkTimeout(spec.timeoutMs, undefined);
    const envs = checkEnvs(spec.envs, "sandbox envs");
    const Sandbox = await this.sdk();
    const sbx = await Sandbox.create(this.config.template, {
      metadata: { ...metadata.data },
      envs,
      timeoutMs: Math.min(spec.timeoutMs, this.maxTimeoutMs),
    }).catch((err: unknown) => {
      throw mapE2BError(err, "create");
    });
    const sandbox = new E2BSandbox(sbx, this.config.agentPort, this.logger, this.config.portUrl);
    try {
      const r = await sandbox.run({ command: "sh", args: ["-c", workspaceInitLine()] }, { timeoutMs: 60_000 });
      if (r.exitCode !== 0)
        throw new FleetError("sandbox", `E2B workspace setup failed (${r.exitCode}): ${r.stderr.slice(-500)}`, {
          retryable: true,
        });
    } catch (err) {
      await sandbox.kill().catch(() => undefined);
      throw err;
    }
    this.logger.info({ sandboxId: sandbox.id, template: this.config.template }, "e2b sandbox created");
    return sandbox;
  }

  async connect(id: string): Promise<E2BSandbox | null> {
    if (!SANDBOX_ID.test(id)) return null;
    const Sandbox = await this.sdk();
    try {
      return new E2BSandbox(await Sandbox.connect(id), this.config.agentPort, this.logger, this.config.portUrl);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw mapE2BError(err, "connect");
    }
  }

  async list(filter: Partial<Record<string, string>> = {}): Promise<SandboxSummary[]> {
    const Sandbox = await this.sdk();
    let raw: unknown[];
    try {
      raw = await collectPages(Sandbox.list(e2bListOptions(filter)));
    } catch (err) {
      throw mapE2BError(err, "list");
    }
    const out: SandboxSummary[] = [];
    for (const item of raw) {
      const parsed = ListedSandbox.safeParse(item);
      if (!parsed.success) {
        this.logger.warn({ err: errorMessage(parsed.error) }, "skipping malformed sandbox in E2B list");
        continue;
      }
      const { sandboxId, metadata, startedAt, endAt } = parsed.data;
      out.push({
        id: sandboxId,
        provider: "e2b",
        metadata,
        startedAt: startedAt.getTime(),
        ...(endAt ? { endAt: endAt.getTime() } : {}),
      });
    }
    // E2B's pages promise no order; the port does.
    return out.sort(oldestFirst);
  }

  async setTimeout(id: string, timeoutMs: number): Promise<boolean> {
    if (!SANDBOX_ID.test(id)) return false;
    checkTimeout(timeoutMs, this.maxTimeoutMs);
    const Sandbox = await this.sdk();
    try {
      await Sandbox.setTimeout(id, timeoutMs);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw mapE2BError(err, "setTimeout");
    }
  }

  async kill(id: string): Promise<boolean> {
    if (!SANDBOX_ID.test(id)) return false;
    const Sandbox = await this.sdk();
    try {
      return await Sandbox.kill(id);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw mapE2BError(err, "kill");
    }
  }
}
