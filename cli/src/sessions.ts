import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { FleetError, type Session } from "@fleet/shared";
import { ApiClient } from "./client.js";
import { formatLogLine, formatMetrics, formatSession, type MetricsView } from "./format.js";
import type { CliContext } from "./infra.js";
import { readFleetState } from "./fleet-state.js";
import { cliApiKey } from "./keys.js";

function client(ctx: CliContext): ApiClient {
  const url = ctx.env.FLEET_API_URL ?? readFleetState(ctx.home)?.apiUrl;
  if (!url) throw new FleetError("config", "no api to talk to: start the fleet with ./fleet up, or set FLEET_API_URL");
  return new ApiClient(url, cliApiKey(ctx));
}

/** `./fleet submit "prompt" [--project p] [--card c] [--file path[=dest]]… [--follow]` */
export async function submitCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      project: { type: "string", default: "default" },
      card: { type: "string" },
      file: { type: "string", multiple: true, default: [] },
      tool: { type: "string", multiple: true, default: [] },
      model: { type: "string" },
      "max-tokens": { type: "string" },
      "max-cost": { type: "string" },
      id: { type: "string" },
      follow: { type: "boolean", short: "f", default: false },
    },
  });
  const prompt = positionals.join(" ").trim();
  if (!prompt)
    throw new FleetError(
      "bad_input",
      'usage: ./fleet submit "prompt" [--project p] [--card c] [--file local[=path]] [--max-tokens n] [--max-cost c] [-f]',
    );
  const files = (values.file ?? []).map((spec) => {
    const [local, dest] = spec.split("=", 2) as [string, string | undefined];
    return { path: dest ?? local, content: readFileSync(local).toString("base64"), encoding: "base64" as const };
  });
  const budget = {
    ...(values["max-tokens"] ? { maxTokens: Number(values["max-tokens"]) } : {}),
    ...(values["max-cost"] ? { maxCost: Number(values["max-cost"]) } : {}),
  };
  const api = client(ctx);
  const res = await api.request<{ sessionId: string; status: string }>("POST", "/v1/sessions", {
    projectId: values.project,
    prompt,
    ...(values.id ? { sessionId: values.id } : {}),
    ...(values.card ? { cardId: values.card } : {}),
    ...(values.model ? { model: values.model } : {}),
    ...(values.tool?.length ? { tools: values.tool } : {}),
    ...(files.length ? { files } : {}),
    ...(Object.keys(budget).length ? { budget } : {}),
  });
  ctx.out(`${res.sessionId} ${res.status}`);
  return values.follow ? followLogs(ctx, api, res.sessionId) : 0;
}

async function followLogs(ctx: CliContext, api: ApiClient, id: string): Promise<number> {
  let status = "unknown";
  for await (const ev of api.follow(id)) {
    if (ev.event === "log") ctx.out(formatLogLine(ev.data as { seq: number; at: number; line: string }));
    if (ev.event === "end") status = (ev.data as { status: string }).status;
  }
  ctx.out(`session ${id} ${status}`);
  return status === "completed" ? 0 : 1;
}

/** `./fleet logs [-f] <id>` */
export async function logsCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { follow: { type: "boolean", short: "f", default: false } },
  });
  const id = positionals[0];
  if (!id) throw new FleetError("bad_input", "usage: ./fleet logs [-f] <session id>");
  const api = client(ctx);
  if (values.follow) return followLogs(ctx, api, id);
  const res = await api.request<{ lines: Array<{ seq: number; at: number; line: string }> }>(
    "GET",
    `/v1/sessions/${encodeURIComponent(id)}/logs`,
  );
  for (const l of res.lines) ctx.out(formatLogLine(l));
  return 0;
}

/** `./fleet ls [--project p] [--limit n]` */
export async function lsCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { project: { type: "string", default: "default" }, limit: { type: "string", default: "20" } },
  });
  const page = await client(ctx).request<{ items: Session[] }>(
    "GET",
    `/v1/sessions?projectId=${encodeURIComponent(values.project ?? "default")}&limit=${values.limit}`,
  );
  for (const s of page.items) {
    ctx.out(
      `${s.id.padEnd(40)} ${s.status.padEnd(10)} ${new Date(s.createdAt).toISOString()}  ${s.prompt.replace(/\s+/g, " ").slice(0, 50)}`,
    );
  }
  if (page.items.length === 0) ctx.out(`no sessions in project ${values.project}`);
  return 0;
}

/** `./fleet show <id>` */
export async function showCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const id = argv[0];
  if (!id) throw new FleetError("bad_input", "usage: ./fleet show <session id>");
  const api = client(ctx);
  const s = await api.request<Session>("GET", `/v1/sessions/${encodeURIComponent(id)}`);
  for (const l of formatSession(s)) ctx.out(l);
  const m = await api.request<MetricsView>("GET", `/v1/sessions/${encodeURIComponent(id)}/metrics`);
  ctx.out("");
  for (const l of formatMetrics(m)) ctx.out(l);
  return 0;
}

/** `./fleet cancel <id> [--reason r]`: asks the fleet to end the session; the watchdog does it. */
export async function cancelCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { reason: { type: "string" } },
  });
  const id = positionals[0];
  if (!id || positionals.length > 1)
    throw new FleetError("bad_input", "usage: ./fleet cancel <session id> [--reason r]");
  const res = await client(ctx).request<{ sessionId: string; status: string }>(
    "POST",
    `/v1/sessions/${encodeURIComponent(id)}/cancel`,
    values.reason !== undefined ? { reason: values.reason } : undefined,
  );
  ctx.out(
    `cancel requested for ${res.sessionId} (was ${res.status}); ./fleet show ${res.sessionId} tells when it ended`,
  );
  return 0;
}
