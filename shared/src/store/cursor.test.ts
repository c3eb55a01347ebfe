import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { lastTransition, type TransitionDoc } from "./transitions.js";

describe("cursor", () => {
  it("round-trips and rejects tampering", () => {
    expect(decodeCursor(encodeCursor(42, "s-1"))).toEqual({ createdAt: 42, id: "s-1" });
    expect(() => decodeCursor("nope")).toThrow(/invalid cursor/);
    expect(() => decodeCursor(Buffer.from('[-1,"x"]').toString("base64url"))).toThrow(/invalid cursor/);
  });
});

describe("transition records", () => {
  const rec = (from: TransitionDoc["from"], to: TransitionDoc["to"]): TransitionDoc => ({ _id: `s/from:${from}`, sessionId: "s", from, to, at: 1, set: {} });

  it("follow the chain from pending", () => {
    expect(lastTransition([])).toBeUndefined();
    expect(lastTransition([rec("pending", "running")])?.to).toBe("running");
    expect(lastTransition([rec("running", "completed"), rec("pending", "running")])?.to).toBe("completed");
    expect(lastTransition([rec("pending", "cancelled")])?.to).toBe("cancelled");
    // A record for leaving running means nothing if pending was left straight to an end.
    expect(lastTransition([rec("pending", "failed"), rec("running", "completed")])?.to).toBe("failed");
  });
});
