import { z } from "zod";
import type { AgentEvent } from "../port.js";
import { MessageError, TodoList, errorOf, toAgentPart, toAgentStatus, toAgentTodos } from "./wire.js";

/** `/event` payloads are `{id, type, properties}`; only the types the fleet acts on are read. */
const Envelope = z.looseObject({ type: z.string(), properties: z.unknown().optional() });

const StatusProps = z.looseObject({ sessionID: z.string(), status: z.looseObject({ type: z.string() }) });
const SessionProps = z.looseObject({ sessionID: z.string() });
const ErrorProps = z.looseObject({ sessionID: z.string().optional(), error: MessageError.optional() });
const PartProps = z.looseObject({ part: z.unknown() });
const TodoProps = z.looseObject({ sessionID: z.string(), todos: TodoList });

/**
 * One server event as the port's event, or undefined for events the fleet ignores (text deltas,
 * file watcher, plugin and catalog noise) and for malformed ones.
 */
export function toAgentEvent(raw: unknown): AgentEvent | undefined {
  const env = Envelope.safeParse(raw);
  if (!env.success) return undefined;
  const props = env.data.properties;
  switch (env.data.type) {
    case "server.heartbeat":
    case "server.connected":
      return { type: "heartbeat" };
    case "session.status": {
      const p = StatusProps.safeParse(props);
      return p.success
        ? { type: "status", sessionId: p.data.sessionID, status: toAgentStatus(p.data.status.type) }
        : undefined;
    }
    case "session.idle": {
      const p = SessionProps.safeParse(props);
      return p.success ? { type: "idle", sessionId: p.data.sessionID } : undefined;
    }
    case "session.error": {
      const p = ErrorProps.safeParse(props);
      if (!p.success) return undefined;
      const error = p.data.error
        ? errorOf(p.data.error)
        : { name: "UnknownError", message: "the agent reported an error without details" };
      return { type: "error", ...(p.data.sessionID ? { sessionId: p.data.sessionID } : {}), ...error };
    }
    case "message.part.updated": {
      const p = PartProps.safeParse(props);
      const part = p.success ? toAgentPart(p.data.part) : undefined;
      return part ? { type: "part", part } : undefined;
    }
    case "todo.updated": {
      const p = TodoProps.safeParse(props);
      return p.success ? { type: "todos", sessionId: p.data.sessionID, todos: toAgentTodos(p.data.todos) } : undefined;
    }
    default:
      return undefined;
  }
}
