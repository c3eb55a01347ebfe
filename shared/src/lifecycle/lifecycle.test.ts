import { describe, expect, it } from "vitest";
import { createCloser } from "./index.js";

describe("closer", () => {
  it("runs steps once, in reverse order, and keeps going past a failing step", async () => {
    const order: string[] = [];
    const errors: string[] = [];
    const closer = createCloser((name) => errors.push(name));
    closer.add("store", () => void order.push("store"));
    closer.add("bus", () => {
      order.push("bus");
      throw new Error("boom");
    });
    closer.add("http", async () => void order.push("http"));
    await Promise.all([closer.close(), closer.close()]);
    await closer.close();
    expect(order).toEqual(["http", "bus", "store"]);
    expect(errors).toEqual(["bus"]);
    expect(closer.closed).toBe(true);
  });
});
