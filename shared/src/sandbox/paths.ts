import { FleetError } from "../errors/index.js";

/**
 * Checks shared by every provider: paths come from outside (restored files, card files, agent
 * requests), so the lexical rules are enforced here once, before any provider touches a disk.
 */

/** Refuses paths that could leave their base; bad input, so never retried. */
export function badPath(path: string, reason: string): FleetError {
  return new FleetError("sandbox", `refused sandbox path ${JSON.stringify(path.slice(0, 200))}: ${reason}`, {
    retryable: false,
    details: { path: path.slice(0, 200), reason },
  });
}

const MAX_PATH = 4096;

/**
 * The segments of a path that must stay below its base: relative, no `..`, no NUL, not empty.
 * `.` and empty segments (`a//b`, `./a`) are dropped, so `a/./b` and `a/b` name the same file.
 */
export function relativeSegments(path: string): string[] {
  if (typeof path !== "string" || path.length === 0) throw badPath(String(path), "empty path");
  if (path.length > MAX_PATH) throw badPath(path, "path too long");
  if (path.includes("\0")) throw badPath(path, "NUL byte in path");
  if (path.startsWith("/")) throw badPath(path, "absolute path");
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.some((s) => s === "..")) throw badPath(path, "'..' segment");
  if (segments.length === 0) throw badPath(path, "path names the base itself");
  return segments;
}

/** Like relativeSegments, but an empty or "." path means the base itself (a working directory). */
export function relativeDirSegments(path: string | undefined): string[] {
  if (path === undefined || path === "" || path === ".") return [];
  return relativeSegments(path);
}

/** Joins checked segments below a POSIX base, for providers whose files live on another machine. */
export function joinPosix(base: string, segments: readonly string[]): string {
  const trimmed = base.endsWith("/") ? base.slice(0, -1) : base;
  return segments.length === 0 ? trimmed : `${trimmed}/${segments.join("/")}`;
}

/** Environment names a process can receive; anything else would be mangled or refused by exec. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkEnvs(envs: Record<string, string> | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(envs ?? {})) {
    if (!ENV_NAME.test(name)) {
      throw new FleetError(
        "sandbox",
        `${what}: invalid environment variable name ${JSON.stringify(name.slice(0, 100))}`,
        { retryable: false },
      );
    }
    if (typeof value !== "string" || value.includes("\0")) {
      throw new FleetError("sandbox", `${what}: environment variable ${name} must be a string without NUL bytes`, {
        retryable: false,
      });
    }
    out[name] = value;
  }
  return out;
}
