import type { ScenarioInput } from "../scenario.js";

/** The file the demo scenario writes, so tests and the demo can check the workspace afterwards. */
export const DEMO_FILE = { path: "hello.txt", content: "Hello from the session fleet!\n" } as const;

export const DEMO_TODOS = [
  { content: "Write hello.txt", status: "completed", priority: "high" },
  { content: "Show hello.txt with cat", status: "completed", priority: "medium" },
] as const;

/**
 * A small coding session: write a file, run a command on it, keep a todo list, answer. The tool
 * names and arguments are OpenCode 1.18's own (`write` {filePath, content}, `bash` {command},
 * `todowrite` {todos: [{content, status, priority}]}), so the agent really runs them.
 */
export const demo: ScenarioInput = {
  name: "demo",
  delayMs: 5,
  turns: [
    {
      type: "tools",
      reasoning: "The task asks for a greeting file. I will write it, then check it.",
      text: "I'll create hello.txt first.",
      calls: [{ name: "write", arguments: { filePath: DEMO_FILE.path, content: DEMO_FILE.content } }],
    },
    { type: "tools", calls: [{ name: "bash", arguments: { command: `cat ${DEMO_FILE.path}` } }] },
    { type: "tools", calls: [{ name: "todowrite", arguments: { todos: DEMO_TODOS.map((t) => ({ ...t })) } }] },
    { type: "text", text: `Done. ${DEMO_FILE.path} now says: ${DEMO_FILE.content.trim()}` },
  ],
};
