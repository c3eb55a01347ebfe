import { describe, expect, it } from "vitest";
import { toAgentEvent } from "./events.js";
import { messageId } from "./ids.js";
import { MessageList, toAgentMessages, toAgentPart } from "./wire.js";

// Shapes as OpenCode 1.18.33 sent them on this machine (ids shortened).
const ids = { id: "prt_1", sessionID: "ses_1", messageID: "msg_1" };
const mapped = { id: "prt_1", sessionId: "ses_1", messageId: "msg_1" };

describe("OpenCode parts", () => {
  it("maps a completed tool part", () => {
    const part = {
      ...ids,
      type: "tool",
      tool: "bash",
      callID: "call_1",
      state: {
        status: "completed",
        input: { command: "cat hello.txt" },
        output: "hi\n",
        metadata: { exit: 0 },
        title: "cat hello.txt",
        time: { start: 10, end: 20 },
      },
    };
    expect(toAgentPart(part)).toEqual({
      ...mapped,
      kind: "tool",
      tool: "bash",
      callId: "call_1",
      status: "completed",
      input: { command: "cat hello.txt" },
      output: "hi\n",
      title: "cat hello.txt",
      startedAt: 10,
      endedAt: 20,
    });
  });

  it("maps a pending tool part and a failed one", () => {
    expect(
      toAgentPart({
        ...ids,
        type: "tool",
        tool: "write",
        callID: "c",
        state: { status: "pending", input: {}, raw: "" },
      }),
    ).toMatchObject({ kind: "tool", status: "pending", input: {} });
    expect(
      toAgentPart({
        ...ids,
        type: "tool",
        tool: "bash",
        state: { status: "error", input: {}, error: "boom", time: { start: 1, end: 2 } },
      }),
    ).toMatchObject({ kind: "tool", status: "error", error: "boom" });
  });

  it("maps text, reasoning and step-finish parts", () => {
    expect(toAgentPart({ ...ids, type: "text", text: "hello", time: { start: 1 } })).toEqual({
      ...mapped,
      kind: "text",
      text: "hello",
    });
    expect(toAgentPart({ ...ids, type: "reasoning", text: "hmm" })).toEqual({
      ...mapped,
      kind: "reasoning",
      text: "hmm",
    });
    const finish = {
      ...ids,
      type: "step-finish",
      reason: "stop",
      cost: 0.5,
      tokens: { total: 30, input: 20, output: 8, reasoning: 2, cache: { read: 4, write: 1 } },
    };
    expect(toAgentPart(finish)).toEqual({
      ...mapped,
      kind: "step-finish",
      cost: 0.5,
      tokens: { input: 20, output: 8, reasoning: 2, cacheRead: 4, cacheWrite: 1 },
    });
  });

  it("turns unknown or odd parts into 'other' and drops non-parts", () => {
    expect(toAgentPart({ ...ids, type: "step-start", snapshot: "abc" })).toEqual({
      ...mapped,
      kind: "other",
      type: "step-start",
    });
    expect(toAgentPart({ ...ids, type: "tool", tool: "x", state: { status: "exploded" } })).toEqual({
      ...mapped,
      kind: "other",
      type: "tool",
    });
    expect(toAgentPart({ ...ids, type: "text" })).toEqual({ ...mapped, kind: "other", type: "text" });
    expect(toAgentPart({ type: "text", text: "no ids" })).toBeUndefined();
    expect(toAgentPart("nonsense")).toBeUndefined();
  });
});

describe("OpenCode messages", () => {
  it("maps info and parts, errors included", () => {
    const list = MessageList.parse([
      { info: { id: "msg_1", role: "user", time: { created: 1 } }, parts: [{ ...ids, type: "text", text: "do it" }] },
      {
        info: {
          id: "msg_2",
          role: "assistant",
          finish: "stop",
          time: { created: 2, completed: 3 },
          error: { name: "MessageAbortedError", data: { message: "Aborted" } },
          tokens: {},
        },
        parts: [{ broken: true }, { ...ids, type: "patch", hash: "h", files: [] }],
      },
    ]);
    expect(toAgentMessages(list)).toEqual([
      { id: "msg_1", role: "user", createdAt: 1, parts: [{ ...mapped, kind: "text", text: "do it" }] },
      {
        id: "msg_2",
        role: "assistant",
        finish: "stop",
        createdAt: 2,
        completedAt: 3,
        error: { name: "MessageAbortedError", message: "Aborted" },
        parts: [{ ...mapped, kind: "other", type: "patch" }],
      },
    ]);
  });
});

describe("OpenCode events", () => {
  it("maps the events the fleet follows", () => {
    expect(
      toAgentEvent({ id: "e", type: "session.status", properties: { sessionID: "ses_1", status: { type: "busy" } } }),
    ).toEqual({ type: "status", sessionId: "ses_1", status: "busy" });
    expect(
      toAgentEvent({
        type: "session.status",
        properties: { sessionID: "ses_1", status: { type: "retry", attempt: 2, message: "x", next: 5 } },
      }),
    ).toEqual({ type: "status", sessionId: "ses_1", status: "retry" });
    expect(toAgentEvent({ type: "session.idle", properties: { sessionID: "ses_1" } })).toEqual({
      type: "idle",
      sessionId: "ses_1",
    });
    expect(
      toAgentEvent({
        type: "session.error",
        properties: { sessionID: "ses_1", error: { name: "MessageAbortedError", data: { message: "Aborted" } } },
      }),
    ).toEqual({ type: "error", sessionId: "ses_1", name: "MessageAbortedError", message: "Aborted" });
    expect(toAgentEvent({ type: "session.error", properties: {} })).toMatchObject({
      type: "error",
      name: "UnknownError",
    });
    expect(
      toAgentEvent({
        type: "message.part.updated",
        properties: { sessionID: "ses_1", part: { ...ids, type: "text", text: "t" }, time: 1 },
      }),
    ).toEqual({ type: "part", part: { ...mapped, kind: "text", text: "t" } });
    expect(
      toAgentEvent({
        type: "todo.updated",
        properties: { sessionID: "ses_1", todos: [{ content: "a", status: "pending", priority: "high" }] },
      }),
    ).toEqual({ type: "todos", sessionId: "ses_1", todos: [{ content: "a", status: "pending", priority: "high" }] });
    expect(toAgentEvent({ type: "server.heartbeat", properties: {} })).toEqual({ type: "heartbeat" });
  });

  it("ignores deltas, other types and malformed events", () => {
    expect(
      toAgentEvent({
        type: "message.part.delta",
        properties: { sessionID: "s", partID: "p", field: "text", delta: "x" },
      }),
    ).toBeUndefined();
    expect(toAgentEvent({ type: "plugin.added", properties: { id: "x" } })).toBeUndefined();
    expect(toAgentEvent({ type: "session.idle", properties: {} })).toBeUndefined();
    expect(toAgentEvent({ type: "message.part.updated", properties: { part: { type: "text" } } })).toBeUndefined();
    expect(toAgentEvent("data")).toBeUndefined();
  });
});

describe("message ids", () => {
  it("use OpenCode's format and ascend, also within one millisecond", () => {
    const a = messageId(1_795_511_792_585);
    const b = messageId(1_795_511_792_585);
    const c = messageId(1_795_511_792_586);
    expect(a).toMatch(/^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$/);
    expect(a < b && b < c).toBe(true);
    // Same arithmetic as OpenCode's own ids: an id of this server's clock sorts among its ids.
    expect(c.slice(4, 16)).toBe(((1_795_511_792_586n * 4096n + 1n) & 0xffffffffffffn).toString(16));
    // A real assistant id, made ~640 ms after its prompt (created at ...792585).
    expect(messageId(1_795_511_792_586) < "msg_20cd7b64c001ouGGLZunFHzl2P").toBe(true);
    expect(messageId(1_795_511_794_117) > "msg_20cd7b64c001ouGGLZunFHzl2P").toBe(true);
    // A clock that goes backwards does not make ids go backwards.
    expect(messageId(1_000) > c).toBe(true);
  });
});
