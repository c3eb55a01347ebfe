import { z } from "zod";
import { EVENTS, type EventKind } from "./catalog.js";
import { DeadLetter, LogLine, Session } from "./session.js";

/** JSON Schema (draft 2020-12) for every bus message and stored document, generated from the zod catalog. */
export function jsonSchemas(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kind of Object.keys(EVENTS) as EventKind[]) {
    const e = EVENTS[kind];
    out[`session.${kind}`] = {
      title: e.subject,
      description: e.description,
      ...z.toJSONSchema(e.schema, { io: "input", unrepresentable: "any" }),
    };
  }
  const documents = {
    "document.session": [Session, "session document (MongoDB collection sessions, _id = id)"],
    "document.log-line": [LogLine, "log line (MongoDB collection session_logs, unique by sessionId and seq)"],
    "document.dead-letter": [DeadLetter, "dead bus message (MongoDB collection dead_letters)"],
  } as const;
  for (const [name, [schema, title]] of Object.entries(documents)) {
    out[name] = { title, ...z.toJSONSchema(schema, { io: "output", unrepresentable: "any" }) };
  }
  return out;
}
