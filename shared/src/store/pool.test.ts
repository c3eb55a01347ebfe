import { describe, expect, it } from "vitest";
import { poolSlotHolder, poolSlotOwner } from "./pool.js";

describe("pool slot holders", () => {
  it("name the spawner instance that took the slot", () => {
    const holder = poolSlotHolder("spawner-host-123-abcdef", "9f1c");
    expect(holder.startsWith("pool:")).toBe(true);
    expect(poolSlotOwner(holder)).toBe("spawner-host-123-abcdef");
    // An owner with colons of its own is kept whole.
    expect(poolSlotOwner(poolSlotHolder("a:b", "x"))).toBe("a:b");
  });
  it("name no owner for a session's holder or an older pool holder", () => {
    expect(poolSlotOwner("ses-1")).toBeUndefined();
    expect(poolSlotOwner("pool:0b8e1c2a-uuid-only")).toBeUndefined();
  });
});
