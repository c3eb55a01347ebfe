import { isTerminal, type Metrics, type Session } from "@session-fleet/client";

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export function formatLogLine(l: { seq: number; at: number; line: string }): string {
  return `${new Date(l.at).toISOString().slice(11, 23)}  ${String(l.seq).padStart(3)}  ${l.line}`;
}

export function formatSession(s: Session): string[] {
  const out = [`session ${s.id}  ${statusText(s)}  project ${s.projectId}${s.cardId ? `  card ${s.cardId}` : ""}`];
  if (s.sandbox) out.push(`sandbox ${s.sandbox.id} (${s.sandbox.provider})`);
  if (s.error) out.push(`error   ${s.error.code}: ${s.error.message}`);
  const u = s.usage;
  if (u)
    out.push(
      `model   ${u.calls} call(s) through the gateway: ${u.tokensIn} tokens in (${u.cachedTokens} cached), ${u.tokensOut} out, cost ${u.cost}`,
    );
  const o = s.output;
  if (o) {
    out.push("", "response:", indent(o.response || "(empty)"));
    if (o.toolCalls.length)
      out.push("", `tool calls (${o.toolCalls.length}):`, ...o.toolCalls.map((t) => `  ${t.name} ${t.status ?? ""}`));
    if (o.todos.length) out.push("", "todos:", ...o.todos.map((t) => `  [${t.status}] ${t.content}`));
    if (o.diffs.length)
      out.push("", "changed files:", ...o.diffs.map((d) => `  ${d.file} (+${d.additions ?? 0} -${d.deletions ?? 0})`));
  }
  return out;
}

/**
 * An ended document keeps the phase it ended in (where a timeout struck, for instance), so shown
 * as is it would read "completed (running)". Only a session that ended before its agent ran says
 * where; one that ran shows its status alone.
 */
function statusText(s: Session): string {
  if (!isTerminal(s.status)) return `${s.status} (${s.phase})`;
  return s.phase === "running" ? s.status : `${s.status} (ended during ${s.phase})`;
}

export function formatMetrics(m: Metrics): string[] {
  return [
    m.startedWarm ? "setup breakdown (warm: a ready agent from the pool):" : "setup breakdown:",
    ...m.steps.filter((s) => s.step !== "execution").map((s) => `  ${s.step.padEnd(14)} ${secs(s.ms).padStart(9)}`),
    `  ${"setup total".padEnd(14)} ${secs(m.setupMs).padStart(9)}  (${m.setupPercent}%)`,
    `  ${"execution".padEnd(14)} ${secs(m.executionMs).padStart(9)}  (${m.executionPercent}%)`,
    `usage (as the agent reported it): ${m.usage.tokensIn} tokens in, ${m.usage.tokensOut} out, cost ${m.usage.cost}, sandbox ${m.usage.sandboxSeconds.toFixed(1)} s`,
  ];
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}
