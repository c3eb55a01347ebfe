import { describe, expect, it } from "vitest";
import type { AgentMessage, AgentToolPart } from "../agent/index.js";
import { agentFinished, extractOutput, extractUsage } from "./extract.js";
import { toolLabel, toolLines } from "./log-lines.js";
import { agentPassword } from "./password.js";
import { buildPromptText } from "./prompt.js";

const tool = (over: Partial<AgentToolPart>): AgentToolPart => ({
  id: "p1",
  messageId: "m1",
  sessionId: "s",
  kind: "tool",
  tool: "write",
  status: "running",
  ...over,
});

describe("tool log lines", () => {
  it("names tools readably", () => {
    expect(toolLabel("automation.saveArtifact")).toBe("Save artifact");
    expect(toolLabel("run_tests")).toBe("Run tests");
    expect(toolLabel("bash")).toBe("Bash");
    expect(toolLabel("todowrite")).toBe("Update todos");
    expect(toolLabel("")).toBe("Tool");
  });

  it("gives one line when a tool starts and one when it ends, keyed by part", () => {
    expect(toolLines(tool({ input: { filePath: "/w/hello.txt" } }), "/w")).toEqual([
      { key: "tool:p1:start", kind: "tool", line: "▸ Write hello.txt" },
    ]);
    const done = toolLines(tool({ status: "completed", tool: "bash", input: { command: "cat hello.txt" } }));
    expect(done.map((l) => l.line)).toEqual(["▸ Bash cat hello.txt", "✓ Bash cat hello.txt"]);
    const failed = toolLines(tool({ status: "error", tool: "bash", input: { command: "false" }, error: "exit 1" }));
    expect(failed[1]).toEqual({ key: "tool:p1:done", kind: "error", line: "✗ Bash false failed: exit 1" });
    // Lines already written are left out: only the end of a part whose start is known.
    const completed = tool({ status: "completed", tool: "bash", input: { command: "ls" } });
    expect(toolLines(completed, undefined, (key) => key === "tool:p1:start")).toEqual([
      { key: "tool:p1:done", kind: "tool", line: "✓ Bash ls" },
    ]);
    expect(toolLines(completed, undefined, () => true)).toEqual([]);
  });

  it("keeps the original platform's special cases", () => {
    expect(
      toolLines(tool({ tool: "automation.saveArtifact", status: "completed", output: '{"saved":"report.md"}' })).map(
        (l) => l.line,
      ),
    ).toEqual(["Saving artifact…", "Saved: report.md"]);
    expect(toolLines(tool({ tool: "beads.create", status: "completed", output: '{"title":"Fix it"}' }))[1]?.line).toBe(
      "Created: Fix it",
    );
    expect(toolLines(tool({ tool: "workflow.completeStage", status: "completed" }))[1]?.line).toBe("Stage completed");
    const todos = toolLines(
      tool({
        tool: "todowrite",
        status: "completed",
        input: { todos: [{ status: "completed" }, { status: "pending" }] },
      }),
    );
    expect(todos[1]?.line).toBe("Updated todos: 1/2 done");
  });
});

describe("result extraction", () => {
  const base = { messageId: "m", sessionId: "s" };
  const messages: AgentMessage[] = [
    { id: "u", role: "user", parts: [{ ...base, id: "u1", kind: "text", text: "do it" }] },
    {
      id: "a1",
      role: "assistant",
      finish: "tool-calls",
      completedAt: 2,
      parts: [
        { ...base, id: "r", kind: "reasoning", text: "plan" },
        { ...base, id: "t", kind: "text", text: "Writing the file." },
        { ...base, id: "w", kind: "tool", tool: "write", status: "completed", input: { filePath: "a" }, output: "ok" },
        {
          ...base,
          id: "f1",
          kind: "step-finish",
          cost: 0.5,
          tokens: { input: 10, output: 5, reasoning: 1, cacheRead: 2, cacheWrite: 0 },
        },
      ],
    },
    {
      id: "a2",
      role: "assistant",
      finish: "stop",
      completedAt: 3,
      parts: [
        { ...base, id: "t2", kind: "text", text: "Done: a exists." },
        {
          ...base,
          id: "f2",
          kind: "step-finish",
          cost: 0.25,
          tokens: { input: 20, output: 7, reasoning: 0, cacheRead: 0, cacheWrite: 0 },
        },
      ],
    },
  ];

  it("takes the last text as the response and the rest as thinking", () => {
    const out = extractOutput(messages, [{ content: "x", status: "completed" }], [{ file: "a", after: "1" }]);
    expect(out.response).toBe("Done: a exists.");
    expect(out.thinking).toBe("plan\n\nWriting the file.");
    expect(out.toolCalls).toMatchObject([{ name: "write", status: "completed", output: "ok" }]);
    expect(out.todos).toEqual([{ content: "x", status: "completed" }]);
    expect(out.diffs).toEqual([{ file: "a", after: "1" }]);
  });

  it("adds up usage from step-finish parts", () => {
    expect(extractUsage(messages)).toEqual({ tokensIn: 32, tokensOut: 13, cost: 0.75 });
  });

  it("sees the agent finished only when its last message stopped for a reason other than a tool call", () => {
    expect(agentFinished(messages)).toBe(true);
    expect(agentFinished(messages.slice(0, 2))).toBe(false);
    expect(agentFinished(messages.slice(0, 1))).toBe(false);
    expect(agentFinished([...messages.slice(0, 2), { id: "a3", role: "assistant", parts: [] }])).toBe(false);
  });
});

describe("agent password and prompt", () => {
  it("derives a stable password per session and attempt, different for each", () => {
    const a = agentPassword("s".repeat(32), "ses-1", 1);
    expect(agentPassword("s".repeat(32), "ses-1", 1)).toBe(a);
    expect(agentPassword("s".repeat(32), "ses-1", 2)).not.toBe(a);
    expect(agentPassword("t".repeat(32), "ses-1", 1)).not.toBe(a);
    expect(a.length).toBeGreaterThanOrEqual(40);
  });

  it("adds the allowed tools section only when tools are limited", () => {
    expect(buildPromptText("hi", [])).toBe("hi");
    expect(buildPromptText("hi", ["write", "bash"])).toBe("hi\n\n## Allowed tools\nUse only these tools: write, bash");
  });
});
