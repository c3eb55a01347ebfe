/**
 * OpenCode 1.18 reports a session's file changes as unified diffs made with unlimited context
 * (`context: Number.MAX_SAFE_INTEGER`), so one hunk spans the whole file and both versions can be
 * read back from it. A patch that does not have that shape (several hunks, a hunk not starting at
 * the top, a binary file with no patch) yields nothing rather than a wrong file.
 */
export function contentsFromPatch(patch: string): { before: string; after: string } | undefined {
  const lines = patch.split("\n");
  let i = 0;
  // Header: "Index:", "====", "---", "+++" (and git's "diff --git", "index", mode lines).
  while (i < lines.length && !lines[i]?.startsWith("@@")) i++;
  if (i >= lines.length) return undefined;
  const header = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(lines[i] ?? "");
  if (!header) return undefined;
  const oldStart = Number(header[1]);
  const oldCount = header[2] === undefined ? 1 : Number(header[2]);
  const newStart = Number(header[3]);
  const newCount = header[4] === undefined ? 1 : Number(header[4]);
  // A hunk of a whole file starts at line 1, or at 0 when that side is empty.
  if (oldStart !== (oldCount === 0 ? 0 : 1) || newStart !== (newCount === 0 ? 0 : 1)) return undefined;

  const before: string[] = [];
  const after: string[] = [];
  let last: "both" | "before" | "after" | undefined;
  for (i++; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const mark = line[0];
    const text = line.slice(1);
    if (mark === " ") {
      before.push(`${text}\n`);
      after.push(`${text}\n`);
      last = "both";
    } else if (mark === "-") {
      before.push(`${text}\n`);
      last = "before";
    } else if (mark === "+") {
      after.push(`${text}\n`);
      last = "after";
    } else if (mark === "\\") {
      // "\ No newline at end of file" applies to the line just before it.
      if (last === "both" || last === "before") before.push(chop(before.pop()));
      if (last === "both" || last === "after") after.push(chop(after.pop()));
    } else if (mark === "@") {
      return undefined; // a second hunk: the context was not the whole file
    } else if (line === "" && i === lines.length - 1) {
      break; // the patch's own trailing newline
    } else {
      return undefined;
    }
  }
  if (before.length !== oldCount || after.length !== newCount) return undefined;
  return { before: before.join(""), after: after.join("") };
}

function chop(line: string | undefined): string {
  return (line ?? "").replace(/\n$/, "");
}
