import type { Collection, Document } from "mongodb";
import { sleep } from "./util.js";

export interface StoreSamples {
  /** When the collection first held at least `n` documents (the first sample that saw it); NaN if never. */
  reached(n: number): number;
  /** The last count seen. */
  readonly count: number;
  /** Time of the first sample with any document, and of the first that saw the final count. */
  window(): { first: number; full: number };
  stop(): Promise<void>;
}

/**
 * When documents reach a collection, as an outside reader sees it: its count read back to back, at
 * most every `intervalMs`. The writers' own timestamps say when a line was made, not when it was
 * stored (lines may be stored well after they are published), so the harness times the store itself.
 */
export function sampleStored<T extends Document>(coll: Collection<T>, intervalMs = 50): StoreSamples {
  const samples: Array<{ at: number; count: number }> = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const count = await coll.countDocuments({}).catch(() => undefined);
      if (count !== undefined && count !== samples.at(-1)?.count) samples.push({ at: Date.now(), count });
      await sleep(Math.max(0, intervalMs - (Date.now() - started)));
    }
  })();
  return {
    reached(n) {
      // Counts only grow, so the first sample at or past n is found by bisection.
      let lo = 0;
      let hi = samples.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((samples[mid]?.count ?? 0) >= n) hi = mid;
        else lo = mid + 1;
      }
      return samples[lo]?.at ?? Number.NaN;
    },
    get count() {
      return samples.at(-1)?.count ?? 0;
    },
    window() {
      return { first: samples.find((s) => s.count > 0)?.at ?? Number.NaN, full: samples.at(-1)?.at ?? Number.NaN };
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
