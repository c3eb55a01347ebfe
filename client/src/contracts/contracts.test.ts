import { describe, expect, it } from "vitest";
import { UsageDay, usageDay } from "./usage.js";
import {
  CONSUMERS,
  EVENTS,
  FEED,
  FileSpec,
  LIMITS,
  SessionId,
  SessionLog,
  SessionRequested,
  jsonSchemas,
  lastSeqOf,
  logLines,
  streamName,
  streamSubjects,
  subjectFilter,
  subjectFor,
  type EventKind,
} from "./index.js";

const valid = { v: 1, sessionId: "abc-1", projectId: "proj", prompt: "do it", requestedAt: 1 };

describe("contracts", () => {
  it("fills request defaults and rejects unknown fields and other versions", () => {
    const parsed = SessionRequested.parse(valid);
    expect(parsed.config.timeoutMs).toBe(600_000);
    expect(parsed.files).toEqual([]);
    expect(SessionRequested.safeParse({ ...valid, extra: 1 }).success).toBe(false);
    expect(SessionRequested.safeParse({ ...valid, v: 2 }).success).toBe(false);
    expect(SessionRequested.safeParse({ ...valid, prompt: "" }).success).toBe(false);
  });

  it("accepts session ids that are one subject token, nothing else", () => {
    for (const ok of ["a", "ses_123", "A-b_C9"]) expect(SessionId.safeParse(ok).success).toBe(true);
    for (const bad of ["", "a.b", "a b", "*", ">", "-lead", "x".repeat(129)])
      expect(SessionId.safeParse(bad).success).toBe(false);
  });

  it("rejects file paths that escape the workspace", () => {
    for (const path of ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", "a\0b"]) {
      expect(FileSpec.safeParse({ path, content: "" }).success, path).toBe(false);
    }
    expect(FileSpec.parse({ path: "src/a.ts", content: "x" }).encoding).toBe("utf8");
  });

  it("names subjects, filters and streams with and without a namespace", () => {
    expect(subjectFor("", "requested")).toBe("session.requested");
    expect(subjectFor("", "log", "s1")).toBe("session.log.s1");
    expect(subjectFilter("", "log")).toBe("session.log.>");
    expect(subjectFor("t1", "completed")).toBe("t1.session.completed");
    expect(streamName("", "work")).toBe("FLEET_WORK");
    expect(streamName("t-1", "logs")).toBe("T_1_FLEET_LOGS");
    expect(streamSubjects("", "events").sort()).toEqual([
      "session.cancel",
      "session.cancelled",
      "session.completed",
      "session.failed",
    ]);
  });

  it("keeps work subjects and terminal events in different streams", () => {
    expect(EVENTS.requested.stream).toBe("work");
    expect(EVENTS.running.stream).toBe("work");
    for (const k of ["completed", "failed", "cancelled"] as const) expect(EVENTS[k].stream).toBe("events");
    // A work queue allows one consumer per subject: each work subject has exactly one fleet consumer.
    const workConsumers = Object.values(CONSUMERS)
      .filter((c) => c.stream === "work")
      .map((c) => c.event);
    expect(new Set(workConsumers).size).toBe(workConsumers.length);
  });

  it("gives a session's three terminal events one Nats-Msg-Id, and a cancel request its own subject and id", () => {
    for (const k of ["completed", "failed", "cancelled"] as const)
      expect(EVENTS[k].msgId({ sessionId: "s1" } as never), k).toBe("ended:s1");
    expect(EVENTS.cancel).toMatchObject({ subject: "session.cancel", stream: "events" });
    expect(EVENTS.cancel.msgId({ v: 1, sessionId: "s1", at: 1 })).toBe("cancel:s1");
    expect(CONSUMERS.watchdog.event).toBe("cancel");
    // Outside systems read every terminal subject from their feed, and send both requests.
    expect([...FEED.lent].sort()).toEqual(["cancelled", "completed", "failed", "log"]);
    expect([...FEED.requests].sort()).toEqual(["cancel", "requested"]);
  });

  it("unpacks a log message into its lines, each with its seq, and knows its last", () => {
    const m = SessionLog.parse({
      v: 2,
      sessionId: "s1",
      seq: 7,
      at: 5,
      lines: [
        { kind: "tool", line: "a", key: "k" },
        { kind: "text", line: "b" },
      ],
    });
    expect(logLines(m)).toEqual([
      { sessionId: "s1", seq: 7, at: 5, kind: "tool", line: "a", key: "k" },
      { sessionId: "s1", seq: 8, at: 5, kind: "text", line: "b" },
    ]);
    expect(lastSeqOf(m)).toBe(8);
    // Version 1 (one line per message) and an empty message are refused.
    expect(SessionLog.safeParse({ v: 1, sessionId: "s1", seq: 1, at: 1, kind: "tool", line: "a" }).success).toBe(false);
    expect(SessionLog.safeParse({ ...m, lines: [] }).success).toBe(false);
    expect(
      SessionLog.safeParse({ ...m, lines: Array.from({ length: LIMITS.logLinesPerMessage + 1 }, () => m.lines[0]) })
        .success,
    ).toBe(false);
  });

  it("exports a JSON Schema for every message, carrying the version field", () => {
    const schemas = jsonSchemas();
    for (const kind of Object.keys(EVENTS) as EventKind[]) {
      const s = schemas[`session.${kind}`] as { properties: Record<string, { const?: number }>; required: string[] };
      // The log's body is at version 2 (one message carries several lines); every other is at 1.
      expect(s.properties.v?.const, kind).toBe(kind === "log" ? 2 : 1);
      expect(s.required).toContain("v");
    }
    expect(Object.keys(schemas)).toContain("document.session");
  });
});

describe("usage days", () => {
  it("are real UTC calendar days from 1970 on", () => {
    expect(UsageDay.safeParse("2031-03-04").success).toBe(true);
    for (const bad of ["2031-02-30", "1969-12-31", "0000-01-01", "2031-3-4", "2031-13-01", ""])
      expect(UsageDay.safeParse(bad).success, bad).toBe(false);
    expect(usageDay(Date.parse("2031-03-04T23:59:59Z"))).toBe("2031-03-04");
  });
});
