import { readFileSync } from "node:fs";
import { FleetError } from "@fleet/shared";
import { FleetHttpClient, FleetUnreachable, type SubmitInput } from "@session-fleet/client";
import { formatLogLine, formatMetrics, formatSession } from "./format.js";
import type { CliContext } from "./infra.js";
import { readFleetState } from "./fleet-state.js";
import { cliApiKey } from "./keys.js";

/** The api the CLI talks to (FLEET_API_URL, or the one `./fleet up` started), through the client package. */
export function apiClient(ctx: CliContext): FleetHttpClient {
  const url = ctx.env.FLEET_API_URL ?? readFleetState(ctx.home)?.apiUrl;
  if (!url) throw new FleetUnreachable("no api to talk to: start the fleet with ./fleet up, or set FLEET_API_URL");
  const apiKey = cliApiKey(ctx);
  return new FleetHttpClient({ baseUrl: url, ...(apiKey ? { apiKey } : {}) });
}

export interface SubmitArgs {
  prompt: string;
  project: string;
  card?: string | undefined;
  file: string[];
  tool: string[];
  model?: string | undefined;
  maxTokens?: number | undefined;
  maxCost?: number | undefined;
  id?: string | undefined;
  follow: boolean;
  json: boolean;
}

/** `./fleet submit "prompt"`: submits over HTTP; with --follow, prints the log until the session ends. */
export async function submitCmd(ctx: CliContext, a: SubmitArgs): Promise<number> {
  const files = a.file.map((spec) => {
    const [local, dest] = spec.split("=", 2) as [string, string | undefined];
    let content: Buffer;
    try {
      content = readFileSync(local);
    } catch (err) {
      throw new FleetError("bad_input", `cannot read --file ${local}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    return { path: dest ?? local, content: content.toString("base64"), encoding: "base64" as const };
  });
  const budget = {
    ...(a.maxTokens !== undefined ? { maxTokens: a.maxTokens } : {}),
    ...(a.maxCost !== undefined ? { maxCost: a.maxCost } : {}),
  };
  const input: SubmitInput = {
    projectId: a.project,
    prompt: a.prompt,
    ...(a.id ? { sessionId: a.id } : {}),
    ...(a.card ? { cardId: a.card } : {}),
    ...(a.model ? { model: a.model } : {}),
    ...(a.tool.length ? { tools: a.tool } : {}),
    ...(files.length ? { files } : {}),
    ...(Object.keys(budget).length ? { budget } : {}),
  };
  const api = apiClient(ctx);
  const res = await api.submit(input);
  ctx.out(a.json ? JSON.stringify(res) : `${res.sessionId} ${res.status}`);
  return a.follow ? followLogs(ctx, api, res.sessionId, a.json) : 0;
}

/** Prints the log as it comes (JSON lines with --json); exit 0 when the session completed. */
async function followLogs(ctx: CliContext, api: FleetHttpClient, id: string, json: boolean): Promise<number> {
  let status = "unknown";
  for await (const ev of api.follow(id)) {
    if (ev.type === "log") ctx.out(json ? JSON.stringify(ev.line) : formatLogLine(ev.line));
    else {
      status = ev.end.status;
      ctx.out(json ? JSON.stringify({ sessionId: id, ...ev.end }) : `session ${id} ${status}`);
    }
  }
  return status === "completed" ? 0 : 1;
}

/** `./fleet logs [-f] ID` */
export async function logsCmd(ctx: CliContext, a: { id: string; follow: boolean; json: boolean }): Promise<number> {
  const api = apiClient(ctx);
  if (a.follow) return followLogs(ctx, api, a.id, a.json);
  const lines = await api.logs(a.id);
  if (a.json) ctx.out(JSON.stringify(lines));
  else for (const l of lines) ctx.out(formatLogLine(l));
  return 0;
}

/** `./fleet ls [--project p] [--limit n]` */
export async function lsCmd(ctx: CliContext, a: { project: string; limit: number; json: boolean }): Promise<number> {
  const page = await apiClient(ctx).list({ projectId: a.project, limit: a.limit });
  if (a.json) {
    ctx.out(JSON.stringify(page));
    return 0;
  }
  for (const s of page.items) {
    ctx.out(
      `${s.id.padEnd(40)} ${s.status.padEnd(10)} ${new Date(s.createdAt).toISOString()}  ${s.prompt.replace(/\s+/g, " ").slice(0, 50)}`,
    );
  }
  if (page.items.length === 0) ctx.out(`no sessions in project ${a.project}`);
  return 0;
}

/** `./fleet show ID` */
export async function showCmd(ctx: CliContext, a: { id: string; json: boolean }): Promise<number> {
  const api = apiClient(ctx);
  const [session, metrics] = await Promise.all([api.get(a.id), api.metrics(a.id)]);
  if (a.json) {
    ctx.out(JSON.stringify({ session, metrics }));
    return 0;
  }
  for (const l of formatSession(session)) ctx.out(l);
  ctx.out("");
  for (const l of formatMetrics(metrics)) ctx.out(l);
  return 0;
}

/** `./fleet cancel ID [--reason r]`: asks the fleet to end the session; the watchdog does it. */
export async function cancelCmd(ctx: CliContext, a: { id: string; reason?: string | undefined }): Promise<number> {
  const res = await apiClient(ctx).cancel(a.id, a.reason);
  ctx.out(
    `cancel requested for ${res.sessionId} (was ${res.status}); ./fleet show ${res.sessionId} tells when it ended`,
  );
  return 0;
}
