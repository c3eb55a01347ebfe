import { describe, expect, it } from "vitest";
import { contentsFromPatch } from "./patch.js";

const header =
  "Index: a.txt\n===================================================================\n--- a.txt\t\n+++ a.txt\t\n";

describe("contentsFromPatch", () => {
  it("reads an added file", () => {
    expect(contentsFromPatch(`${header}@@ -0,0 +1,2 @@\n+one\n+two\n`)).toEqual({ before: "", after: "one\ntwo\n" });
  });

  it("reads a deleted file", () => {
    expect(contentsFromPatch(`${header}@@ -1,2 +0,0 @@\n-one\n-two\n`)).toEqual({ before: "one\ntwo\n", after: "" });
  });

  it("reads both sides of a whole-file modification, blank lines included", () => {
    const patch = `${header}@@ -1,4 +1,4 @@\n first\n-old\n+new\n \n last\n`;
    expect(contentsFromPatch(patch)).toEqual({ before: "first\nold\n\nlast\n", after: "first\nnew\n\nlast\n" });
  });

  it("honours 'No newline at end of file' on either side", () => {
    const patch = `${header}@@ -1,2 +1,2 @@\n keep\n-end\n\\ No newline at end of file\n+end\n`;
    expect(contentsFromPatch(patch)).toEqual({ before: "keep\nend", after: "keep\nend\n" });
    const both = `${header}@@ -1,1 +1,2 @@\n+top\n same\n\\ No newline at end of file\n`;
    expect(contentsFromPatch(both)).toEqual({ before: "same", after: "top\nsame" });
  });

  it("gives up on patches that are not the whole file", () => {
    expect(contentsFromPatch(`${header}@@ -10,2 +10,2 @@\n-a\n+b\n x\n`)).toBeUndefined();
    expect(contentsFromPatch(`${header}@@ -1,1 +1,1 @@\n-a\n+b\n@@ -5,1 +5,1 @@\n-c\n+d\n`)).toBeUndefined();
    expect(contentsFromPatch(`${header}@@ -1,3 +1,3 @@\n-a\n+b\n`)).toBeUndefined();
    expect(contentsFromPatch("")).toBeUndefined();
    expect(contentsFromPatch("Binary files differ\n")).toBeUndefined();
  });
});
