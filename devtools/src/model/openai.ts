import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { ScenarioTurn } from "./scenario.js";

/**
 * The slice of the OpenAI chat-completions wire format the scripted model speaks. Requests are
 * checked loosely: agents add fields of their own (temperature, stream_options, provider options)
 * that the script has no use for.
 */
export const ChatMessage = z.looseObject({ role: z.string(), content: z.unknown().optional() });
export const ChatRequest = z.looseObject({
  model: z.string().default("scripted"),
  messages: z.array(ChatMessage).min(1),
  stream: z.boolean().optional(),
  tools: z.array(z.unknown()).optional(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export type FinishReason = "stop" | "tool_calls";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One streamed `delta` (the content of `choices[0].delta`). */
export type Delta = Record<string, unknown>;

export interface PlannedAnswer {
  deltas: Delta[];
  finish: FinishReason;
  /** The whole answer, for the non-streaming response. */
  message: { role: "assistant"; content: string | null; reasoning_content?: string; tool_calls?: unknown[] };
  completionChars: number;
}

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** Turns a scripted turn into the deltas a real provider would stream for it. */
export function planAnswer(turn: ScenarioTurn, chunkChars: number): PlannedAnswer {
  const deltas: Delta[] = [];
  let completionChars = 0;
  if (turn.reasoning) {
    for (const piece of chunks(turn.reasoning, chunkChars)) deltas.push({ reasoning_content: piece });
    completionChars += turn.reasoning.length;
  }
  const text = turn.type === "text" ? turn.text : (turn.text ?? "");
  for (const piece of chunks(text, chunkChars)) deltas.push({ content: piece });
  completionChars += text.length;
  const toolCalls: unknown[] = [];
  if (turn.type === "tools") {
    turn.calls.forEach((call, index) => {
      // Random ids: the server is stateless, and ids must not repeat within an agent's session.
      const id = `call_${randomBytes(8).toString("hex")}`;
      const args = JSON.stringify(call.arguments);
      deltas.push({ tool_calls: [{ index, id, type: "function", function: { name: call.name, arguments: "" } }] });
      for (const piece of chunks(args, chunkChars * 4))
        deltas.push({ tool_calls: [{ index, function: { arguments: piece } }] });
      toolCalls.push({ id, type: "function", function: { name: call.name, arguments: args } });
      completionChars += call.name.length + args.length;
    });
  }
  // The first delta names the role, as OpenAI does.
  if (deltas.length === 0) deltas.push({ content: "" });
  deltas[0] = { role: "assistant", ...deltas[0] };
  return {
    deltas,
    finish: toolCalls.length > 0 ? "tool_calls" : "stop",
    message: {
      role: "assistant",
      content: text || (toolCalls.length > 0 ? null : ""),
      ...(turn.reasoning ? { reasoning_content: turn.reasoning } : {}),
      ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
    },
    completionChars,
  };
}

/** Rough token counts (4 characters a token), enough for the agent to record usage. */
export function usageFor(request: ChatRequest, completionChars: number): Usage {
  const prompt = Math.ceil(JSON.stringify(request.messages).length / 4);
  const completion = Math.max(1, Math.ceil(completionChars / 4));
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** `sentAt` (epoch ms with fractions) marks when the chunk was written, for latency measurements. */
export function chunkEnvelope(
  id: string,
  model: string,
  created: number,
  choices: unknown[],
  usage?: Usage,
  sentAt?: number,
): string {
  return JSON.stringify({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices,
    ...(usage ? { usage } : {}),
    ...(sentAt !== undefined ? { sent_at: sentAt } : {}),
  });
}

export function completionBody(
  id: string,
  model: string,
  created: number,
  answer: PlannedAnswer,
  usage: Usage,
): string {
  return JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{ index: 0, message: answer.message, finish_reason: answer.finish, logprobs: null }],
    usage,
  });
}
