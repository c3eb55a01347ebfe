import { FleetError } from "../../errors/index.js";
import { badPath } from "../paths.js";
import { shellQuote } from "../shell.js";

/**
 * Symlink checks for a filesystem on another machine. E2B's file API follows links, so before
 * writing or reading, one command asks the sandbox where each parent really is and whether the
 * final component is a link or not a regular file. Output is NUL-separated: paths may hold newlines.
 */

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** One shell line: a kind code per path (L link, N not a regular file, F fine), the real base, real parents. */
export function pathGuardLine(base: string, absPaths: readonly string[]): string {
  const finals = absPaths.map(shellQuote).join(" ");
  const parents = absPaths.map((p) => shellQuote(parentOf(p))).join(" ");
  return [
    `for p in ${finals}; do`,
    `if [ -L "$p" ]; then printf 'L\\0'; elif [ -e "$p" ] && [ ! -f "$p" ]; then printf 'N\\0'; else printf 'F\\0'; fi;`,
    `done && realpath -m -z -- ${shellQuote(base)} ${parents}`,
  ].join(" ");
}

/** Throws the first refusal found in the guard's output; `originals` are the caller's relative paths. */
export function checkGuardOutput(stdout: string, originals: readonly string[]): void {
  const parts = stdout.split("\0");
  const n = originals.length;
  const base = parts[n] ?? "";
  if (parts.length < 2 * n + 1 || !base.startsWith("/"))
    throw new FleetError("sandbox", "E2B path check returned unexpected output", { retryable: true });
  for (let i = 0; i < n; i++) {
    const original = originals[i] ?? "";
    const kind = parts[i];
    const realParent = parts[n + 1 + i] ?? "";
    if (realParent !== base && !realParent.startsWith(`${base}/`))
      throw badPath(original, "resolves outside the sandbox folder (symlink)");
    if (kind === "L") throw badPath(original, "is a symlink");
    if (kind === "N") throw badPath(original, "not a regular file");
    if (kind !== "F") throw new FleetError("sandbox", "E2B path check returned unexpected output", { retryable: true });
  }
}
