import { randomBytes } from "node:crypto";
import { readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { FleetError, errorMessage } from "../../errors/index.js";
import type { Logger } from "../../log/index.js";
import { anyGroupAlive, terminateSandbox } from "./procs.js";
import { LOCAL_ID, layoutOf, readRecord, type RegistryRecord } from "./registry.js";

/**
 * Ending sandboxes. A kill first renames the folder out of the registry (`.killing-<id>-…`), which
 * is atomic: listers stop seeing it at once, a concurrent kill finds nothing to do, and a
 * concurrent startBackground cannot record a new process group and so ends what it just started.
 * A killer that crashes halfway leaves the renamed folder, which the next list() finishes off.
 */

export const CREATING_PREFIX = ".creating-";
const KILLING_PREFIX = ".killing-";
const STALE_CREATING_MS = 10 * 60_000;
const STALE_KILLING_MS = 30_000;

/**
 * Registered, not past its hard timeout, and either nothing started yet or a started group alive.
 * Network bridges do not count: a sandbox whose agent died is gone even while they still run.
 */
export function recordAlive(record: RegistryRecord, now = Date.now()): boolean {
  if (now >= record.endAt) return false;
  const started = record.processes.filter((p) => !p.bridge);
  if (started.length === 0) return true;
  return anyGroupAlive(
    record.id,
    started.map((p) => p.pgid),
  );
}

async function finishKill(dir: string, id: string, pgids: number[], graceMs: number, logger: Logger): Promise<void> {
  const { survivors } = await terminateSandbox(id, pgids, graceMs);
  if (survivors.length > 0) logger.warn({ sandboxId: id, survivors }, "sandbox processes survived SIGKILL");
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

export async function killLocalSandbox(rootDir: string, id: string, graceMs: number, logger: Logger): Promise<boolean> {
  if (!LOCAL_ID.test(id)) return false;
  const layout = layoutOf(join(rootDir, id));
  let record: RegistryRecord | null = null;
  try {
    record = await readRecord(layout);
  } catch (err) {
    // A damaged record must not keep a sandbox alive: its processes are still found by marker.
    logger.warn({ sandboxId: id, err: errorMessage(err) }, "killing sandbox with an unreadable registry record");
  }
  const wasAlive = record !== null && recordAlive(record);
  const grave = join(rootDir, `${KILLING_PREFIX}${id}-${randomBytes(3).toString("hex")}`);
  try {
    await rename(layout.dir, grave);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new FleetError("sandbox", `cannot kill sandbox ${id}: ${errorMessage(err)}`, { retryable: true, cause: err });
  }
  await finishKill(grave, id, record?.processes.map((p) => p.pgid) ?? [], graceMs, logger);
  logger.info({ sandboxId: id, wasAlive }, "local sandbox killed");
  return wasAlive;
}

/** Finishes kills and creations that a crashed process left halfway. */
export async function sweepLeftovers(rootDir: string, graceMs: number, logger: Logger): Promise<void> {
  const names = await readdir(rootDir).catch(() => [] as string[]);
  for (const name of names) {
    const killing = name.startsWith(KILLING_PREFIX);
    if (!killing && !name.startsWith(CREATING_PREFIX)) continue;
    const dir = join(rootDir, name);
    const age = await stat(dir).then(
      (s) => Date.now() - s.ctimeMs,
      () => -1,
    );
    if (age < (killing ? STALE_KILLING_MS : STALE_CREATING_MS)) continue;
    const id = name.slice(
      (killing ? KILLING_PREFIX : CREATING_PREFIX).length,
      (killing ? KILLING_PREFIX : CREATING_PREFIX).length + 20,
    );
    if (!LOCAL_ID.test(id)) continue;
    const record = await readRecord(layoutOf(dir)).catch(() => null);
    logger.warn({ sandboxId: id, leftover: name }, "finishing a sandbox left halfway by a crashed process");
    await finishKill(dir, id, record?.processes.map((p) => p.pgid) ?? [], graceMs, logger).catch((err: unknown) =>
      logger.warn({ sandboxId: id, err: errorMessage(err) }, "could not remove leftover sandbox folder"),
    );
  }
}
