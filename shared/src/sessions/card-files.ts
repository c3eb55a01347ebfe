import type { AgentFileDiff } from "../agent/index.js";
import { RelativePath, type CardFile } from "../contracts/index.js";
import type { CardFileStore } from "../store/index.js";

/** Files the session wrote become the card's saved files, restored into its next session. */
export async function saveCardFiles(
  store: CardFileStore,
  cardId: string,
  sessionId: string,
  diffs: readonly AgentFileDiff[],
): Promise<void> {
  const savedAt = Date.now();
  const files: CardFile[] = [];
  const deleted: string[] = [];
  for (const d of diffs) {
    if (!isSafeRelative(d.file)) continue;
    if (
      d.after === undefined ||
      (d.after === "" && (d.before ?? "") !== "" && (d.deletions ?? 0) > 0 && (d.additions ?? 0) === 0)
    ) {
      deleted.push(d.file);
    } else {
      files.push({ cardId, path: d.file, content: d.after, encoding: "utf8", sessionId, savedAt });
    }
  }
  if (files.length || deleted.length) await store.saveCardFiles(cardId, files, deleted);
}

/** A path reported by the agent is outside input: only plain relative paths are kept. */
function isSafeRelative(p: string): boolean {
  return RelativePath.safeParse(p).success;
}
