/** How big the warm pool of a key should be. */
export interface PoolSizing {
  /** Kept warm even without demand (0: the pool shrinks to nothing when idle). */
  min: number;
  max: number;
  /** Claims (and misses) within this window make up the demand. */
  windowMs: number;
  /** About how long a pooled sandbox takes to become ready: the time a claim's replacement takes. */
  refillMs: number;
  /** Added to the expected claims during a refill, for bursts. */
  burst: number;
  /** Pooled sandboxes this instance makes at once (each costs a few CPU-seconds). */
  maxCreating: number;
}

/**
 * Demand times the refill time plus a burst margin, between min and max. With no demand in the
 * window the pool falls back to `min`: idle, it shrinks to zero unless a minimum is kept.
 */
export function poolDemandTarget(sizing: PoolSizing, demand: readonly number[], now: number): number {
  const recent = demand.filter((t) => t >= now - sizing.windowMs).length;
  if (recent === 0) return Math.min(sizing.max, sizing.min);
  const perMs = recent / sizing.windowMs;
  const wanted = Math.ceil(perMs * sizing.refillMs) + sizing.burst;
  return Math.max(sizing.min, Math.min(sizing.max, wanted));
}
