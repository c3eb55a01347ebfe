import type { PoolEntry, PoolStatus } from "@fleet/shared";
import type { CliContext } from "./infra.js";
import { openStoreFor } from "./keys.js";

/** A spawner's report older than this is from an instance that stopped (it reports every pool tick). */
const STALE_REPORT_MS = 60_000;

/** `./fleet pool`: per pool key, ready against target, what is starting and claimed, and the hit ratio. */
export async function poolCmd(ctx: CliContext, a: { json: boolean }): Promise<number> {
  const fleet = ctx.env.FLEET_NAME ?? "fleet";
  const store = await openStoreFor(ctx);
  try {
    const now = Date.now();
    const statuses = (await store.poolStatuses(fleet)).filter((s) => now - s.at < STALE_REPORT_MS);
    const entries = await store.poolEntries(fleet);
    if (a.json) ctx.out(JSON.stringify({ fleet, statuses, entries }));
    else for (const line of poolLines(statuses, entries, now)) ctx.out(line);
    return 0;
  } finally {
    await store.close();
  }
}

/** The table `./fleet pool` prints (one row per key, then one per instance with an error). */
export function poolLines(statuses: readonly PoolStatus[], entries: readonly PoolEntry[], now: number): string[] {
  const keys = [...new Set([...statuses.map((s) => s.key), ...entries.map((e) => e.key)])].sort();
  if (keys.length === 0) return ["no warm pool: no spawner runs one (FLEET_POOL_MAX > 0 turns it on)"];
  const lines = [
    `${"key".padEnd(22)}${"ready/target".padEnd(14)}${"starting".padEnd(10)}${"claimed".padEnd(9)}${"hit ratio".padEnd(20)}oldest ready`,
  ];
  for (const key of keys) {
    const of = statuses.filter((s) => s.key === key);
    const mine = entries.filter((e) => e.key === key);
    const warm = mine.filter((e) => e.state === "warm");
    const target = of.reduce((a, s) => a + s.target, 0);
    const hits = of.reduce((a, s) => a + s.hits, 0);
    const misses = of.reduce((a, s) => a + s.misses, 0);
    const ratio =
      hits + misses === 0 ? "-" : `${Math.round((hits / (hits + misses)) * 100)}% (${hits}/${hits + misses})`;
    const oldest = warm.reduce((a, e) => Math.max(a, now - (e.readyAt ?? e.createdAt)), 0);
    lines.push(
      `${key.padEnd(22)}${`${warm.length}/${target}`.padEnd(14)}${String(mine.filter((e) => e.state === "starting").length).padEnd(10)}${String(mine.filter((e) => e.state === "claimed").length).padEnd(9)}${ratio.padEnd(20)}${warm.length ? `${Math.round(oldest / 1000)} s` : "-"}`,
    );
  }
  for (const s of statuses)
    if (s.lastError) lines.push(`  ${s.owner}: ${s.failures} creation failure(s) in a row, last: ${s.lastError}`);
  return lines;
}
