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
 * When lines reach the store: the archivers' count of lines the store acknowledged
 * (`fleet_log_lines_archived_total` on each poller's /metrics), read back to back, at most every
 * `intervalMs`. A line's insertMany answered means the store holds it. The store's own count is not
 * sampled: FerretDB counts a collection by reading all of it (about 125 ms for 6,000 lines here, with
 * `countDocuments` and `estimatedDocumentCount` alike), so sampling it took most of a core from the
 * pipeline under measure. What the store holds in the end is counted there once (B3's `lines`).
 */
export function sampleArchived(metricsPorts: readonly number[], intervalMs = 50): StoreSamples {
  const samples: Array<{ at: number; count: number }> = [];
  let running = true;
  const archived = async (port: number): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /^fleet_log_lines_archived_total(?:\{[^}]*\})? (\S+)$/m.exec(text);
    if (!m) throw new Error(`the poller on ${port} reports no fleet_log_lines_archived_total`);
    return Number(m[1]);
  };
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const count = await Promise.all(metricsPorts.map(archived)).then(
        (counts) => counts.reduce((a, b) => a + b, 0),
        () => undefined,
      );
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
