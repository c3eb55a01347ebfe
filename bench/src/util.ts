import { readFileSync } from "node:fs";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of unsorted values (ms); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export interface Spread {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: maxOf(values) };
}

/** Progress on stderr, one line per step, with the time since the run began. */
export function progress(begin: number): (line: string) => void {
  return (line) => process.stderr.write(`[bench ${((Date.now() - begin) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

const CLOCK_TICKS = 100;

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Waits until `check` is truthy, polling; throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export const round = (v: number, digits = 1): number =>
  Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : v;

/** Math.min/Math.max over arrays of any length (spreading 200,000 values overflows the stack); NaN when empty. */
export const minOf = (values: readonly number[]): number =>
  values.length ? values.reduce((a, v) => Math.min(v, a)) : Number.NaN;
export const maxOf = (values: readonly number[]): number =>
  values.length ? values.reduce((a, v) => Math.max(v, a)) : Number.NaN;
