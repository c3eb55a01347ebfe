import { FleetError } from "@fleet/shared";

export interface FollowerCaps {
  /** Open log streams one API key may hold (one client IP with auth off). */
  perKey: number;
  /** Open log streams this process serves. */
  perProcess: number;
}

export const DEFAULT_FOLLOWER_CAPS: FollowerCaps = { perKey: 50, perProcess: 1_000 };

/** Counts open followers per owner and in all; past a cap a new one is refused with 429. */
export class FollowerLimits {
  private total = 0;
  private readonly byOwner = new Map<string, number>();

  constructor(private readonly caps: FollowerCaps) {}

  get open(): number {
    return this.total;
  }

  /** Takes a place for one follower of `owner`; the function returned gives it back (once). */
  admit(owner: string): () => void {
    const mine = this.byOwner.get(owner) ?? 0;
    if (mine >= this.caps.perKey) {
      throw new FleetError(
        "rate_limited",
        `this API key already has ${mine} open log streams (at most ${this.caps.perKey}); close one or read the logs as JSON`,
      );
    }
    if (this.total >= this.caps.perProcess) {
      throw new FleetError(
        "rate_limited",
        `this api process already serves ${this.total} log streams (at most ${this.caps.perProcess}); retry shortly`,
      );
    }
    this.byOwner.set(owner, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byOwner.get(owner) ?? 1) - 1;
      if (left > 0) this.byOwner.set(owner, left);
      else this.byOwner.delete(owner);
    };
  }
}
