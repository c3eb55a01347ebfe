import { randomInt } from "node:crypto";
import { lchown, readdir } from "node:fs/promises";
import { join } from "node:path";
import { FleetError } from "../../errors/index.js";

/**
 * Each isolated sandbox runs as a user of its own: a uid (and the gid of the same number) that no
 * other live sandbox holds, not root and not the fleet's. Nothing on the host belongs to it but the
 * sandbox's own folders, so it can read no other sandbox's files and none of the fleet's.
 */
export function pickUid(range: readonly [number, number], taken: ReadonlySet<number>): number {
  const [lo, hi] = range;
  const size = hi - lo + 1;
  const start = randomInt(size);
  for (let i = 0; i < size; i++) {
    const uid = lo + ((start + i) % size);
    if (!taken.has(uid)) return uid;
  }
  throw new FleetError("sandbox", `no free sandbox uid in ${lo}-${hi}`, { retryable: true });
}

/** Hands a folder the fleet prepared (and everything below it) to the sandbox's user; links are not followed. */
export async function chownTree(dir: string, uid: number): Promise<void> {
  await lchown(dir, uid, uid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, uid);
    else await lchown(path, uid, uid);
  }
}
