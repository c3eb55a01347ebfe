import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor } from "./cursor.js";

describe("cursor", () => {
  it("round-trips and rejects tampering", () => {
    expect(decodeCursor(encodeCursor(42, "s-1"))).toEqual({ createdAt: 42, id: "s-1" });
    expect(() => decodeCursor("nope")).toThrow(/invalid cursor/);
    expect(() => decodeCursor(Buffer.from('[-1,"x"]').toString("base64url"))).toThrow(/invalid cursor/);
  });
});
