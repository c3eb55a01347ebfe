import { LIMITS, RelativePath, type CardFile } from "../contracts/index.js";
import type { Sandbox } from "../sandbox/port.js";

export interface WorkspaceChanges {
  files: Array<{ path: string; content: string; encoding: "utf8" | "base64" }>;
  deleted: string[];
}

/**
 * What changed in a sandbox's workspace since its baseline commit, read with git and the provider's
 * file API: it does not depend on the agent, so it works while the agent is busy or hung.
 */
export async function workspaceChanges(sandbox: Sandbox): Promise<WorkspaceChanges> {
  const r = await sandbox.run(
    { command: "git", args: ["status", "--porcelain=v1", "-z", "--untracked-files=all"] },
    { timeoutMs: 15_000 },
  );
  if (r.exitCode !== 0) return { files: [], deleted: [] };
  const entries = r.stdout.split("\0");
  const changes: WorkspaceChanges = { files: [], deleted: [] };
  for (let i = 0; i < entries.length && changes.files.length < LIMITS.files; i++) {
    const entry = entries[i] ?? "";
    if (entry.length < 4) continue;
    const [x, y, path] = [entry[0], entry[1], entry.slice(3)];
    // A rename carries its old path as the next entry.
    if (x === "R" || x === "C") i++;
    if (!RelativePath.safeParse(path).success) continue;
    if (x === "D" || y === "D") {
      changes.deleted.push(path);
      continue;
    }
    const bytes = await sandbox.readFile(path);
    if (!bytes || bytes.byteLength > LIMITS.fileBytes) continue;
    const text = Buffer.from(bytes).toString("utf8");
    const isText = Buffer.from(text, "utf8").equals(Buffer.from(bytes));
    changes.files.push({
      path,
      content: isText ? text : Buffer.from(bytes).toString("base64"),
      encoding: isText ? "utf8" : "base64",
    });
  }
  return changes;
}

export function asCardFiles(cardId: string, sessionId: string, changes: WorkspaceChanges): CardFile[] {
  const savedAt = Date.now();
  return changes.files.map((f) => ({
    cardId,
    path: f.path,
    content: f.content,
    encoding: f.encoding,
    sessionId,
    savedAt,
  }));
}
