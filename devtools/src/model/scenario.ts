import { z } from "zod";

/**
 * A scenario is the script the scripted model plays: an ordered list of turns. The server keeps no
 * conversation state; it picks the turn from the conversation each request carries (see `turnIndex`),
 * so any number of agent sessions can share one server and a retried request gets the same answer.
 */

/** Makes a request of a turn fail, for tests of the agent's retry and timeout handling. */
export const ScenarioFailure = z.object({
  /** `http_500` / `http_429`: answer 500 / 429 (rate limited) at once. `hang`: accept the request and never answer. */
  kind: z.enum(["http_500", "http_429", "hang"]),
  /** How many requests for this turn fail before it is played normally (per server); absent: all of them. */
  times: z.number().int().positive().optional(),
});
export type ScenarioFailure = z.infer<typeof ScenarioFailure>;

const turnBase = {
  /** Milliseconds between streamed chunks of this turn (overrides the scenario's). */
  delayMs: z.number().int().min(0).max(60_000).optional(),
  /** Streamed as `reasoning_content` before the text or tool calls. */
  reasoning: z.string().optional(),
  failure: ScenarioFailure.optional(),
};

export const ToolCall = z.object({
  /** The agent's tool name, e.g. OpenCode's `write`, `bash`, `todowrite`. */
  name: z.string().min(1),
  /** The tool's arguments; sent as a JSON string, streamed in pieces. */
  arguments: z.record(z.string(), z.unknown()),
});
export type ToolCall = z.infer<typeof ToolCall>;

export const TextTurn = z.object({ ...turnBase, type: z.literal("text"), text: z.string() });
export const ToolsTurn = z.object({
  ...turnBase,
  type: z.literal("tools"),
  /** Said before the calls, in the same assistant message. */
  text: z.string().optional(),
  calls: z.array(ToolCall).min(1),
});
export const ScenarioTurn = z.discriminatedUnion("type", [TextTurn, ToolsTurn]);
export type ScenarioTurn = z.infer<typeof ScenarioTurn>;

export const Scenario = z.object({
  name: z.string().min(1).default("custom"),
  turns: z.array(ScenarioTurn).min(1),
  /** Default milliseconds between streamed chunks. */
  delayMs: z.number().int().min(0).max(60_000).default(0),
  /** Characters per streamed text chunk. */
  chunkChars: z.number().int().positive().default(24),
  /** Answer to side requests (session titles, summaries) that must not consume a turn. */
  sideText: z.string().default("Scripted session"),
  /** Answer once every turn has been played (a further prompt in the same session). */
  afterText: z.string().default("The scripted scenario has no more turns."),
});
export type Scenario = z.infer<typeof Scenario>;
export type ScenarioInput = z.input<typeof Scenario>;

/** Parses a scenario from untrusted input (a file, a test); throws the zod error on bad input. */
export function parseScenario(input: unknown): Scenario {
  return Scenario.parse(input);
}

/**
 * The position in the script: one turn per assistant message already in the conversation. An agent
 * sends the whole history each step (assistant tool calls, tool results, ...), so the count of
 * assistant messages is exactly how many turns this conversation has been played.
 */
export function turnIndex(messages: readonly { role: string }[]): number {
  return messages.filter((m) => m.role === "assistant").length;
}
