import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { CardFileStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`card files on a real ${inject("storeKind")}`, () => {
  const cardFiles: CardFileStore & { close(): Promise<void> } = useStore("cardfiles");

  it("merges a card's saved files across sessions and drops deleted ones", async () => {
    const f = (path: string, content: string, sessionId: string) => ({
      cardId: "card-files",
      path,
      content,
      encoding: "utf8" as const,
      sessionId,
      savedAt: 1,
    });
    await cardFiles.saveCardFiles("card-files", [f("a.txt", "1", "s1"), f("dir/b.txt", "2", "s1")]);
    await cardFiles.saveCardFiles("card-files", [f("a.txt", "1b", "s2"), f("c.txt", "3", "s2")], ["dir/b.txt"]);
    const files = await cardFiles.cardFiles("card-files");
    expect(files.map((x) => [x.path, x.content, x.sessionId])).toEqual([
      ["a.txt", "1b", "s2"],
      ["c.txt", "3", "s2"],
    ]);
    expect(await cardFiles.cardFiles("other-card")).toEqual([]);
  });
});
