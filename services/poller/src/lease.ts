import { randomUUID } from "node:crypto";
import { errorMessage, type Logger, type Session, type SessionStore } from "@fleet/shared";

/** What a renewal attempt found: still ours, ours again after a lapse, or another watch's. */
export type LeaseState = "held" | "regained" | "lost";

/**
 * A watch's lease on its session document (docs/guarantees.md §9). The bus's hold on the
 * session.running message says no other poller has *that message*; the lease covers the case the
 * hold cannot: the message lost by the bus and republished by the watchdog as a new one.
 *
 * The lease starts as the session document has it (a lease never renewed ends `leaseMs` after the
 * session started, or after the watchdog's republish), so a watch costs no write until half of it
 * is gone. A renewal is one conditional $set naming the holder this watch last saw: the watchdog's
 * republish and a newer watch's renewal both change what it names, so a watch that lost the lease
 * learns it at its next renewal. Until then it acts only while the lease it last had is current by
 * its own clock; the watchdog waits a grace beyond that before it republishes.
 */
export class WatchLease {
  readonly round: number;
  private readonly id = randomUUID();
  private until: number;
  private holder: string | undefined;
  private renewing: Promise<LeaseState> | undefined;
  private lapsedLogged = false;

  constructor(
    private readonly store: Pick<SessionStore, "renewWatch">,
    private readonly session: Pick<Session, "id" | "attempt" | "startedAt" | "watchedUntil" | "watchedBy">,
    round: number,
    private readonly leaseMs: number,
    private readonly log: Logger,
  ) {
    this.round = round;
    this.until = session.watchedUntil ?? (session.startedAt ?? Date.now()) + leaseMs;
    this.holder = session.watchedBy;
  }

  /** The lease this watch last had is current: it may act on the session. */
  valid(now = Date.now()): boolean {
    if (now < this.until) return true;
    if (!this.lapsedLogged) {
      this.lapsedLogged = true;
      this.log.warn("watch lease lapsed; acting on the session only once it is renewed");
    }
    return false;
  }

  /** The document read by the watch's store check shows the lease moved on: another watch has the session. */
  takenFrom(current: Pick<Session, "rewatches" | "watchedBy">): boolean {
    const taken = (current.rewatches ?? 0) !== this.round || (current.watchedBy ?? this.holder) !== this.holder;
    if (taken) this.log.warn("watch lease taken by a newer watch; stopping this one");
    return taken;
  }

  /** Renews once half the lease is gone; one renewal at a time. A store error leaves the lease as it was. */
  renewIfDue(now = Date.now()): Promise<LeaseState> {
    if (now < this.until - this.leaseMs / 2) return Promise.resolve("held");
    this.renewing ??= this.renew().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async renew(): Promise<LeaseState> {
    const lapsed = !this.valid();
    // Counted from before the write: the lease never ends later here than in the document.
    const until = Date.now() + this.leaseMs;
    let renewed: boolean;
    try {
      renewed = await this.store.renewWatch(
        this.session.id,
        { attempt: this.session.attempt, round: this.round, ...(this.holder ? { holder: this.holder } : {}) },
        this.id,
        until,
      );
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "watch lease not renewed; the store is away");
      return "held";
    }
    if (!renewed) {
      this.log.warn(
        "watch lease lost (republished, taken by another watch, or the session ended); stopping this watch",
      );
      return "lost";
    }
    this.until = until;
    this.holder = this.id;
    this.lapsedLogged = false;
    return lapsed ? "regained" : "held";
  }
}
