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
  out["document.session"] = z.toJSONSchema(Session, { io: "output", unrepresentable: "any" });
  out["document.log-line"] = z.toJSONSchema(LogLine, { io: "output", unrepresentable: "any" });
  out["document.dead-letter"] = z.toJSONSchema(DeadLetter, { io: "output", unrepresentable: "any" });
  return out;
}
