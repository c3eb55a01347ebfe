import { poolSummary, STALE_POOL_REPORT_MS, type PoolEntry, type PoolStatus } from "@fleet/shared";
import type { CliContext } from "./infra.js";
import { openStoreFor } from "./keys.js";

/** `./fleet pool`: per pool key, ready against target, what is starting and claimed, and the hit ratio. */
export async function poolCmd(ctx: CliContext, a: { json: boolean }): Promise<number> {
  const fleet = ctx.env.FLEET_NAME ?? "fleet";
  const store = await openStoreFor(ctx);
  try {
    const now = Date.now();
    const statuses = (await store.poolStatuses(fleet)).filter((s) => now - s.at < STALE_POOL_REPORT_MS);
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
  const keys = poolSummary(statuses, entries, now);
  if (keys.length === 0) return ["no warm pool: no spawner runs one (FLEET_POOL_MAX > 0 turns it on)"];
  const lines = [
    `${"key".padEnd(22)}${"ready/target".padEnd(14)}${"starting".padEnd(10)}${"claimed".padEnd(9)}${"hit ratio".padEnd(20)}oldest ready`,
  ];
  for (const k of keys) {
    const asked = k.hits + k.misses;
    const ratio = asked === 0 ? "-" : `${Math.round((k.hits / asked) * 100)}% (${k.hits}/${asked})`;
    lines.push(
      `${k.key.padEnd(22)}${`${k.ready}/${k.target}`.padEnd(14)}${String(k.starting).padEnd(10)}${String(k.claimed).padEnd(9)}${ratio.padEnd(20)}${k.ready ? `${Math.round(k.oldestReadyMs / 1000)} s` : "-"}`,
    );
  }
  for (const k of keys)
    for (const e of k.errors)
      lines.push(`  ${e.owner}: ${e.failures} creation failure(s) in a row, last: ${e.lastError}`);
  return lines;
}
