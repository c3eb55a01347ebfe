import {
  ZERO_USAGE,
  isTerminal,
  usageDay,
  type Session,
  type UsageCall,
  type UsageStore,
  type UsageTotals,
} from "@fleet/shared";

/** What the gateway needs of a session on every call: is it still the token's, and what has it spent. */
export interface SessionView {
  session: Pick<Session, "id" | "projectId" | "status" | "attempt" | "config" | "endRequested"> | null;
  /** The ledger's totals plus this instance's calls whose write is not confirmed yet. */
  usage: UsageTotals;
}

interface Entry<T> {
  at: number;
  value: Promise<T>;
}

export interface ViewStore extends Pick<UsageStore, "sessionUsage" | "projectDayUsage"> {
  get(id: string): Promise<Session | null>;
}

function add(a: UsageTotals, b: UsageTotals, sign = 1): UsageTotals {
  return {
    calls: a.calls + sign * b.calls,
    tokensIn: a.tokensIn + sign * b.tokensIn,
    tokensOut: a.tokensOut + sign * b.tokensOut,
    cachedTokens: a.cachedTokens + sign * b.cachedTokens,
    cost: a.cost + sign * b.cost,
  };
}

export function callTotals(call: Pick<UsageCall, "tokensIn" | "tokensOut" | "cachedTokens" | "cost">): UsageTotals {
  return {
    calls: 1,
    tokensIn: call.tokensIn,
    tokensOut: call.tokensOut,
    cachedTokens: call.cachedTokens,
    cost: call.cost,
  };
}

/**
 * Sessions and project days as the store last showed them, trusted for `ttlMs`: a token is checked
 * against its live session on every call, but at most one store read per session (and per project
 * day) per `ttlMs` and instance, concurrent callers sharing it. A session that ends is refused after
 * at most `ttlMs`.
 */
export class Views {
  private readonly sessions = new Map<string, Entry<SessionView>>();
  private readonly days = new Map<string, Entry<UsageTotals>>();
  /** Calls this instance counted whose write the store has not confirmed yet, by key. */
  private readonly pending = new Map<string, UsageTotals>();
  /**
   * Calls whose write the store confirmed, by key, with when: a read that started before that may
   * not show them, so they are added to it (a read that raced the write may count one twice, which
   * errs on the safe side for budgets). Dropped once a read started after them.
   */
  private readonly confirmed = new Map<string, Array<{ at: number; totals: UsageTotals }>>();

  constructor(
    private readonly store: ViewStore,
    private readonly ttlMs: number,
  ) {}

  async session(id: string): Promise<SessionView> {
    const key = `s:${id}`;
    const { at, value } = this.fresh(this.sessions, id, async () => {
      const [s, usage] = await Promise.all([this.store.get(id), this.store.sessionUsage(id)]);
      return { session: s, usage: usage ?? { ...ZERO_USAGE } };
    });
    const view = await value;
    return { session: view.session, usage: this.effective(key, at, view.usage) };
  }

  async projectDay(projectId: string, at = Date.now()): Promise<UsageTotals> {
    const day = usageDay(at);
    const dayKey = `${projectId}:${day}`;
    const entry = this.fresh(this.days, dayKey, () => this.store.projectDayUsage(projectId, day));
    return this.effective(`d:${dayKey}`, entry.at, await entry.value);
  }

  /** Counts a call at once (the next call's budget check sees it); `confirmed` once the store has it. */
  counted(call: UsageCall): { confirmed(): void } {
    const t = callTotals(call);
    const keys = [`s:${call.sessionId}`, `d:${call.projectId}:${usageDay(call.at)}`];
    for (const k of keys) this.pending.set(k, add(this.pending.get(k) ?? { ...ZERO_USAGE }, t));
    let done = false;
    return {
      confirmed: () => {
        if (done) return;
        done = true;
        const at = Date.now();
        for (const k of keys) {
          const left = add(this.pending.get(k) ?? { ...ZERO_USAGE }, t, -1);
          if (left.calls <= 0) this.pending.delete(k);
          else this.pending.set(k, left);
          const list = this.confirmed.get(k) ?? [];
          list.push({ at, totals: t });
          this.confirmed.set(k, list);
        }
      },
    };
  }

  /** Why the view no longer lets this token in (ended, another attempt or project), or undefined. */
  static refusal(
    view: SessionView,
    grant: { sessionId: string; attempt: number; projectId: string },
  ): string | undefined {
    const s = view.session;
    if (!s) return `session ${grant.sessionId} does not exist`;
    if (s.projectId !== grant.projectId) return "the token is for another project";
    if (isTerminal(s.status)) return `session ${s.id} has ended (${s.status})`;
    if (s.attempt !== grant.attempt)
      return `the token is for attempt ${grant.attempt}; session ${s.id} is on attempt ${s.attempt}`;
    return undefined;
  }

  /** What the store showed at `readAt`, plus what this instance counted that it may not have shown. */
  private effective(key: string, readAt: number, stored: UsageTotals): UsageTotals {
    let total = stored;
    const p = this.pending.get(key);
    if (p) total = add(total, p);
    const list = this.confirmed.get(key);
    if (list) {
      const later = list.filter((c) => c.at >= readAt);
      if (later.length === 0) this.confirmed.delete(key);
      else if (later.length < list.length) this.confirmed.set(key, later);
      for (const c of later) total = add(total, c.totals);
    }
    return total;
  }

  private fresh<T>(map: Map<string, Entry<T>>, key: string, load: () => Promise<T>): Entry<T> {
    const now = Date.now();
    const e = map.get(key);
    if (e && now - e.at < this.ttlMs) return e;
    const next: Entry<T> = { at: now, value: load() };
    // A failed read is not kept: the next call asks again.
    next.value.catch(() => {
      if (map.get(key) === next) map.delete(key);
    });
    map.set(key, next);
    if (map.size > 10_000) this.sweep(now);
    return next;
  }

  /** Forgets sessions and days nobody asked about for a while. */
  private sweep(now: number): void {
    const old = Math.max(this.ttlMs, 60_000);
    for (const map of [this.sessions, this.days] as Array<Map<string, Entry<unknown>>>)
      for (const [k, e] of map) if (now - e.at > old) map.delete(k);
    for (const [k, list] of this.confirmed) if (list.every((c) => now - c.at > old)) this.confirmed.delete(k);
  }
}
