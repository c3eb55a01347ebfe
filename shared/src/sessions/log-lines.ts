import type { AgentToolPart } from "../agent/index.js";

/** Short readable names for the agent server's own tools. */
const KNOWN_TOOLS: Record<string, string> = {
  write: "Write",
  edit: "Edit",
  read: "Read",
  bash: "Bash",
  glob: "Glob",
  grep: "Grep",
  list: "List",
  patch: "Patch",
  task: "Task",
  todowrite: "Update todos",
  todoread: "Read todos",
  webfetch: "Web fetch",
};

/** `automation.saveArtifact` -> `Save artifact`; `run_tests` -> `Run tests`. */
export function toolLabel(raw: string): string {
  if (!raw) return "Tool";
  const known = KNOWN_TOOLS[raw];
  if (known) return known;
  const last = raw.includes(".") ? (raw.split(".").pop() ?? raw) : raw;
  const words = last
    .replace(/_/g, " ")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .trim()
    .toLowerCase();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : "Tool";
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

function clip(s: string, n: number): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

/** The one detail worth showing next to a tool's name: the file, the command, the pattern. */
function detail(part: AgentToolPart, workspace?: string): string {
  const input = (part.input ?? {}) as Record<string, unknown>;
  let d =
    str(input.filePath) ??
    str(input.path) ??
    str(input.command) ??
    str(input.pattern) ??
    str(input.url) ??
    str(input.description) ??
    part.title ??
    "";
  if (workspace && d.startsWith(`${workspace}/`)) d = d.slice(workspace.length + 1);
  return d ? ` ${clip(d, 80)}` : "";
}

function parsedOutput(part: AgentToolPart): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(part.output ?? "");
    return v && typeof v === "object" ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Tools of the original platform whose progress reads better in words of their own. */
function special(part: AgentToolPart, phase: "start" | "done"): string | undefined {
  const raw = part.tool;
  // Parsed only for the tools whose end line shows a field of it, and then once.
  let parsed: Record<string, unknown> | undefined;
  const out = (): Record<string, unknown> => (parsed ??= phase === "done" ? parsedOutput(part) : {});
  if (raw.includes("saveArtifact"))
    return phase === "start" ? "Saving artifact…" : `Saved: ${str(out().saved) ?? str(out().name) ?? "artifact"}`;
  if (raw.includes("completeStage")) return phase === "start" ? "Completing stage…" : "Stage completed";
  for (const [op, start, done] of [
    ["create", "Creating task…", () => `Created: ${str(out().title) ?? "task"}`],
    ["close", "Completing task…", () => "Task completed"],
    ["update", "Updating task…", () => "Task updated"],
  ] as const) {
    if (raw.includes(`beads.${op}`)) return phase === "start" ? start : done();
  }
  if (raw === "todowrite" && phase === "done") {
    const todos = (part.input as { todos?: Array<{ status?: string }> } | undefined)?.todos ?? [];
    return `Updated todos: ${todos.filter((t) => t.status === "completed").length}/${todos.length} done`;
  }
  return undefined;
}

export interface ToolLine {
  key: string;
  line: string;
  kind: "tool" | "error";
}

/**
 * The lines a tool part is worth, at most one when it starts and one when it ends; `key` lets a
 * resumed poller skip lines already written. Which ones are due is decided by the caller; a line
 * whose key `written` knows is left out before it is built (a reconcile goes over every part again).
 */
export function toolLines(
  part: AgentToolPart,
  workspace?: string,
  written: (key: string) => boolean = () => false,
): ToolLine[] {
  // A pending part has no input yet; its start line waits for the running state that carries it.
  if (part.status === "pending") return [];
  const startKey = `tool:${part.id}:start`;
  const doneKey = `tool:${part.id}:done`;
  const wantStart = !written(startKey);
  const wantDone = part.status !== "running" && !written(doneKey);
  if (!wantStart && !wantDone) return [];
  const label = `${toolLabel(part.tool)}${detail(part, workspace)}`;
  const out: ToolLine[] = [];
  if (wantStart) out.push({ key: startKey, kind: "tool", line: special(part, "start") ?? `▸ ${label}` });
  if (!wantDone) return out;
  if (part.status === "error")
    out.push({
      key: doneKey,
      kind: "error",
      line: `✗ ${label} failed${part.error ? `: ${clip(part.error, 200)}` : ""}`,
    });
  else out.push({ key: doneKey, kind: "tool", line: special(part, "done") ?? `✓ ${label}` });
  return out;
}
