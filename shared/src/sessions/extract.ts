import type { AgentMessage, AgentTodo, AgentFileDiff } from "../agent/index.js";
import type { SessionOutput } from "../contracts/index.js";

export interface Usage {
  tokensIn: number;
  tokensOut: number;
  cost: number;
}

const OUTPUT_CHARS = 2_000;

/**
 * The session's result from the agent's messages: the final response is the last text of the last
 * assistant message that has text; every other text and all reasoning is the thinking; tool parts
 * become the tool-call record.
 */
export function extractOutput(
  messages: readonly AgentMessage[],
  todos: readonly AgentTodo[],
  diffs: readonly AgentFileDiff[],
): SessionOutput {
  const assistant = messages.filter((m) => m.role === "assistant");
  const texts: string[] = [];
  const thinking: string[] = [];
  const toolCalls: SessionOutput["toolCalls"] = [];
  let lastTextAt = -1;
  for (const message of assistant) {
    for (const part of message.parts) {
      if (part.kind === "text" && part.text.trim()) {
        texts.push(part.text);
        lastTextAt = thinking.length;
        thinking.push(part.text);
      } else if (part.kind === "reasoning" && part.text.trim()) {
        thinking.push(part.text);
      } else if (part.kind === "tool") {
        toolCalls.push({
          id: part.callId ?? part.id,
          name: part.tool,
          status: part.status,
          input: part.input,
          ...(part.output !== undefined ? { output: part.output.slice(0, OUTPUT_CHARS) } : {}),
          ...(part.startedAt !== undefined ? { startedAt: Math.round(part.startedAt) } : {}),
          ...(part.endedAt !== undefined ? { endedAt: Math.round(part.endedAt) } : {}),
        });
      }
    }
  }
  const response = texts.at(-1) ?? "";
  if (lastTextAt >= 0) thinking.splice(lastTextAt, 1);
  return {
    response,
    thinking: thinking.join("\n\n"),
    toolCalls,
    todos: todos.map((t) => ({
      content: t.content,
      status: t.status,
      ...(t.priority ? { priority: t.priority } : {}),
    })),
    diffs: diffs.map((d) => ({ ...d })),
    artifacts: [],
  };
}

/** Tokens and cost as the agent reported them on its step-finish parts. */
export function extractUsage(messages: readonly AgentMessage[]): Usage {
  const usage: Usage = { tokensIn: 0, tokensOut: 0, cost: 0 };
  for (const m of messages) {
    for (const p of m.parts) {
      if (p.kind !== "step-finish") continue;
      usage.tokensIn += p.tokens.input + p.tokens.cacheRead;
      usage.tokensOut += p.tokens.output + p.tokens.reasoning;
      usage.cost += p.cost;
    }
  }
  return usage;
}

/** True when the last assistant message has finished with something other than a tool call. */
export function agentFinished(messages: readonly AgentMessage[]): boolean {
  const last = messages.filter((m) => m.role === "assistant").at(-1);
  if (!last) return false;
  if (last.error) return true;
  return last.completedAt !== undefined && last.finish !== undefined && last.finish !== "tool-calls";
}
