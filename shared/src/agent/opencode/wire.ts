import { z } from "zod";
import type { AgentMessage, AgentPart, AgentSessionStatus, AgentTodo } from "../port.js";

/**
 * What OpenCode 1.18 sends, as far as the fleet reads it. Objects are loose (OpenCode adds fields
 * between releases) and every mapping degrades rather than fails: a part the fleet does not know
 * becomes kind "other", so one odd part never hides a whole conversation.
 */

const num = z.number().catch(0);

export const SessionInfo = z.looseObject({
  id: z.string().min(1),
  time: z.looseObject({ created: z.number().optional() }).optional(),
});

export const Health = z.looseObject({ healthy: z.boolean(), version: z.string().optional() });

export const StatusMap = z.record(z.string(), z.looseObject({ type: z.string() }));

const PartBase = z.looseObject({ id: z.string(), sessionID: z.string(), messageID: z.string(), type: z.string() });

const ToolPart = z.looseObject({
  tool: z.string(),
  callID: z.string().optional(),
  state: z.looseObject({
    status: z.enum(["pending", "running", "completed", "error"]),
    input: z.unknown().optional(),
    output: z.string().optional(),
    error: z.string().optional(),
    title: z.string().optional(),
    time: z.looseObject({ start: z.number().optional(), end: z.number().optional() }).optional(),
  }),
});

const TextPart = z.looseObject({ text: z.string() });

const StepFinishPart = z.looseObject({
  cost: num,
  tokens: z
    .looseObject({
      input: num,
      output: num,
      reasoning: num,
      cache: z.looseObject({ read: num, write: num }).catch({ read: 0, write: 0 }),
    })
    .catch({ input: 0, output: 0, reasoning: 0, cache: { read: 0, write: 0 } }),
});

/** A part as the port shows it; undefined when the value is not a part at all (no ids). */
export function toAgentPart(raw: unknown): AgentPart | undefined {
  const base = PartBase.safeParse(raw);
  if (!base.success) return undefined;
  const ids = { id: base.data.id, messageId: base.data.messageID, sessionId: base.data.sessionID };
  const other: AgentPart = { ...ids, kind: "other", type: base.data.type };
  switch (base.data.type) {
    case "tool": {
      const p = ToolPart.safeParse(raw);
      if (!p.success) return other;
      const s = p.data.state;
      return {
        ...ids,
        kind: "tool",
        tool: p.data.tool,
        ...(p.data.callID !== undefined ? { callId: p.data.callID } : {}),
        status: s.status,
        ...(s.input !== undefined ? { input: s.input } : {}),
        ...(s.output !== undefined ? { output: s.output } : {}),
        ...(s.error !== undefined ? { error: s.error } : {}),
        ...(s.title !== undefined ? { title: s.title } : {}),
        ...(s.time?.start !== undefined ? { startedAt: s.time.start } : {}),
        ...(s.time?.end !== undefined ? { endedAt: s.time.end } : {}),
      };
    }
    case "text":
    case "reasoning": {
      const p = TextPart.safeParse(raw);
      if (!p.success) return other;
      return base.data.type === "text"
        ? { ...ids, kind: "text", text: p.data.text }
        : { ...ids, kind: "reasoning", text: p.data.text };
    }
    case "step-finish": {
      const p = StepFinishPart.safeParse(raw);
      if (!p.success) return other;
      const t = p.data.tokens;
      return {
        ...ids,
        kind: "step-finish",
        cost: p.data.cost,
        tokens: {
          input: t.input,
          output: t.output,
          reasoning: t.reasoning,
          cacheRead: t.cache.read,
          cacheWrite: t.cache.write,
        },
      };
    }
    default:
      return other;
  }
}

const MessageError = z.looseObject({
  name: z.string(),
  data: z.looseObject({ message: z.string().optional() }).optional(),
  message: z.string().optional(),
});

export function errorOf(raw: z.infer<typeof MessageError>): { name: string; message: string } {
  return { name: raw.name, message: raw.data?.message ?? raw.message ?? raw.name };
}

const MessageInfo = z.looseObject({
  id: z.string(),
  role: z.enum(["user", "assistant"]),
  finish: z.string().optional(),
  time: z.looseObject({ created: z.number().optional(), completed: z.number().optional() }).optional(),
  error: MessageError.optional(),
});

export const MessageList = z.array(z.looseObject({ info: MessageInfo, parts: z.array(z.unknown()) }));

export function toAgentMessages(list: z.infer<typeof MessageList>): AgentMessage[] {
  return list.map(({ info, parts }) => ({
    id: info.id,
    role: info.role,
    ...(info.finish !== undefined ? { finish: info.finish } : {}),
    ...(info.time?.created !== undefined ? { createdAt: info.time.created } : {}),
    ...(info.time?.completed !== undefined ? { completedAt: info.time.completed } : {}),
    ...(info.error ? { error: errorOf(info.error) } : {}),
    parts: parts.map(toAgentPart).filter((p): p is AgentPart => p !== undefined),
  }));
}

export const TodoList = z.array(
  z.looseObject({ content: z.string(), status: z.string(), priority: z.string().optional() }),
);

export function toAgentTodos(list: z.infer<typeof TodoList>): AgentTodo[] {
  return list.map((t) => ({
    content: t.content,
    status: t.status,
    ...(t.priority !== undefined ? { priority: t.priority } : {}),
  }));
}

/** `retry` and `idle` are kept; anything else present in the map is a session at work. */
export function toAgentStatus(type: string): AgentSessionStatus {
  return type === "idle" || type === "retry" ? type : "busy";
}

export const DiffList = z.array(
  z.looseObject({
    file: z.string().optional(),
    path: z.string().optional(),
    patch: z.string().optional(),
    additions: z.number().optional(),
    deletions: z.number().optional(),
    status: z.string().optional(),
  }),
);

export { MessageError };
