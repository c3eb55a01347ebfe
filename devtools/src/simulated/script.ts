import type { AgentMessage, AgentPart, AgentToolPart } from "@fleet/shared/agent";
import { simulatedIdleAt, type SimulatedState } from "./state.js";

/**
 * What the SIMULATED agent (benchmarks only) does after a prompt, as pure functions of its
 * sandbox's state and the clock: tool event i (1-based) completes at promptedAt + i × eventMs, and
 * the agent is idle at `simulatedIdleAt(state)`. Every process computes the same run from the
 * same journal, so a poller that takes over sees what the first one saw.
 */

export type ScriptState = Pick<SimulatedState, "id" | "events" | "eventMs" | "promptedAt" | "abortedAt">;

export const ABORTED_ERROR = {
  name: "MessageAbortedError",
  message: "the simulated agent session was aborted",
} as const;

export function agentSessionIdFor(sandboxId: string): string {
  return `${sandboxId}-session`;
}

export function userMessageIdFor(sandboxId: string): string {
  return `${sandboxId}-user`;
}

function assistantMessageIdFor(sandboxId: string): string {
  return `${sandboxId}-assistant`;
}

/** When tool event `i` (1-based) completes; undefined before the prompt. */
export function eventAt(state: ScriptState, i: number): number | undefined {
  return state.promptedAt === undefined ? undefined : state.promptedAt + i * state.eventMs;
}

/** The tool part of event `i`, with the same ids and times whichever process builds it. */
export function toolPart(state: ScriptState, i: number): AgentToolPart {
  const promptedAt = state.promptedAt ?? 0;
  const command = `echo simulated step ${i}`;
  return {
    id: `${state.id}-part-${i}`,
    messageId: assistantMessageIdFor(state.id),
    sessionId: agentSessionIdFor(state.id),
    kind: "tool",
    tool: "bash",
    callId: `${state.id}-call-${i}`,
    status: "completed",
    input: { command },
    output: `simulated step ${i}\n`,
    title: command,
    startedAt: promptedAt + (i - 1) * state.eventMs,
    endedAt: promptedAt + i * state.eventMs,
  };
}

/** Tool events completed by `now` (none after an abort). */
export function emittedCount(state: ScriptState, now: number): number {
  const idleAt = simulatedIdleAt(state);
  if (state.promptedAt === undefined || idleAt === undefined) return 0;
  const until = Math.min(now, idleAt);
  if (state.eventMs === 0) return until >= state.promptedAt ? state.events : 0;
  return Math.max(0, Math.min(state.events, Math.floor((until - state.promptedAt) / state.eventMs)));
}

export function isIdle(state: ScriptState, now: number): boolean {
  const idleAt = simulatedIdleAt(state);
  return idleAt === undefined || now >= idleAt;
}

export function wasAborted(state: ScriptState): boolean {
  if (state.promptedAt === undefined || state.abortedAt === undefined) return false;
  return state.abortedAt < state.promptedAt + state.events * state.eventMs;
}

/**
 * The conversation as `/session/{id}/message` would give it: the user message, then one assistant
 * message with the tool parts done so far; once idle, also a text and a step-finish part, and
 * `finish: "stop"` with completedAt (or the abort error), so completion detection, result and usage
 * extraction work unchanged.
 */
export function scriptedMessages(state: ScriptState, now: number): AgentMessage[] {
  if (state.promptedAt === undefined) return [];
  const sessionId = agentSessionIdFor(state.id);
  const user: AgentMessage = {
    id: userMessageIdFor(state.id),
    role: "user",
    createdAt: state.promptedAt,
    parts: [
      {
        id: `${state.id}-prompt`,
        messageId: userMessageIdFor(state.id),
        sessionId,
        kind: "text",
        text: "(simulated prompt)",
      },
    ],
  };
  const done = emittedCount(state, now);
  const parts: AgentPart[] = [];
  for (let i = 1; i <= done; i++) parts.push(toolPart(state, i));
  const assistant: AgentMessage = {
    id: assistantMessageIdFor(state.id),
    role: "assistant",
    createdAt: state.promptedAt,
    parts,
  };
  if (!isIdle(state, now)) return [user, assistant];
  const messageId = assistant.id;
  assistant.completedAt = simulatedIdleAt(state) as number;
  parts.push({
    id: `${state.id}-step`,
    messageId,
    sessionId,
    kind: "step-finish",
    cost: 0,
    tokens: { input: 1_000, output: 20 + 40 * done, reasoning: 0, cacheRead: 0, cacheWrite: 0 },
  });
  if (wasAborted(state)) {
    assistant.error = { ...ABORTED_ERROR };
  } else {
    parts.splice(done, 0, {
      id: `${state.id}-text`,
      messageId,
      sessionId,
      kind: "text",
      text: `Simulated run finished after ${done} tool call(s).`,
    });
    assistant.finish = "stop";
  }
  return [user, assistant];
}
