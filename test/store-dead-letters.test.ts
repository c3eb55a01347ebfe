import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { DeadLetterStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`dead letters on a real ${inject("storeKind")}`, () => {
  const dead: DeadLetterStore & { close(): Promise<void> } = useStore("deadletters");

  it("records a dead letter once even when reported twice, and lists the newest first", async () => {
    const letter = {
      id: "W:7",
      stream: "W",
      consumer: "c",
      subject: "s",
      seq: 7,
      reason: "first",
      excerpt: "{}",
      deliveries: 1,
      at: 5,
    };
    await Promise.all([dead.recordDead(letter), dead.recordDead({ ...letter, reason: "second" })]);
    await dead.recordDead({ ...letter, reason: "third" });
    await dead.recordDead({ ...letter, id: "W:8", seq: 8, at: 9 });
    const letters = await dead.deadLetters();
    expect(letters.map((d) => d.id)).toEqual(["W:8", "W:7"]);
    expect(letters[1]?.reason).toMatch(/^(first|second)$/);
    expect(await dead.deadLetters({ limit: 1 })).toHaveLength(1);
  });
});
