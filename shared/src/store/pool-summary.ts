import type { PoolKeyView } from "../contracts/index.js";
import type { PoolEntry, PoolStatus } from "./pool.js";

/** A spawner's report older than this is from an instance that stopped (it reports every pool tick). */
export const STALE_POOL_REPORT_MS = 60_000;

/**
 * The warm pool per key, as `./fleet pool` and the dashboard show it: the pool's records counted by
 * state, and the live spawners' reports (target, hits and misses, creation errors) summed.
 */
export function poolSummary(
  statuses: readonly PoolStatus[],
  entries: readonly PoolEntry[],
  now: number,
): PoolKeyView[] {
  const live = statuses.filter((s) => now - s.at < STALE_POOL_REPORT_MS);
  const keys = [...new Set([...live.map((s) => s.key), ...entries.map((e) => e.key)])].sort();
  return keys.map((key) => {
    const reports = live.filter((s) => s.key === key);
    const mine = entries.filter((e) => e.key === key);
    const warm = mine.filter((e) => e.state === "warm");
    const sum = (field: "target" | "hits" | "misses") => reports.reduce((a, s) => a + s[field], 0);
    return {
      key,
      ready: warm.length,
      target: sum("target"),
      starting: mine.filter((e) => e.state === "starting").length,
      claimed: mine.filter((e) => e.state === "claimed").length,
      hits: sum("hits"),
      misses: sum("misses"),
      oldestReadyMs: warm.reduce((a, e) => Math.max(a, now - (e.readyAt ?? e.createdAt)), 0),
      errors: reports.flatMap((s) =>
        s.lastError ? [{ owner: s.owner, failures: s.failures, lastError: s.lastError }] : [],
      ),
    };
  });
}
