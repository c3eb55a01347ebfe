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
  /** Calls this instance counted that the store may not show yet, by session and by project day. */
  private readonly pending = new Map<string, UsageTotals>();

  constructor(
    private readonly store: ViewStore,
    private readonly ttlMs: number,
  ) {}

  async session(id: string): Promise<SessionView> {
    const view = await this.fresh(this.sessions, id, async () => {
      const [s, usage] = await Promise.all([this.store.get(id), this.store.sessionUsage(id)]);
      return { session: s, usage: usage ?? { ...ZERO_USAGE } };
    });
    return { session: view.session, usage: this.withPending(`s:${id}`, view.usage) };
  }

  async projectDay(projectId: string, at = Date.now()): Promise<UsageTotals> {
    const day = usageDay(at);
    const key = `${projectId}:${day}`;
    const stored = await this.fresh(this.days, key, () => this.store.projectDayUsage(projectId, day));
    return this.withPending(`d:${key}`, stored);
  }

  /** Counts a call at once (the next call's budget check sees it) until `confirmed` says the store has it. */
  counted(call: UsageCall): { confirmed(): void } {
    const t = callTotals(call);
    const dayKey = `${call.projectId}:${usageDay(call.at)}`;
    const keys = [`s:${call.sessionId}`, `d:${dayKey}`];
    for (const k of keys) this.pending.set(k, add(this.pending.get(k) ?? { ...ZERO_USAGE }, t));
    let done = false;
    return {
      confirmed: () => {
        if (done) return;
        done = true;
        for (const k of keys) {
          const left = add(this.pending.get(k) ?? { ...ZERO_USAGE }, t, -1);
          if (left.calls <= 0) this.pending.delete(k);
          else this.pending.set(k, left);
        }
        // The store has it now: what was read before it is stale.
        this.sessions.delete(call.sessionId);
        this.days.delete(dayKey);
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

  private withPending(key: string, stored: UsageTotals): UsageTotals {
    const p = this.pending.get(key);
    return p ? add(stored, p) : stored;
  }

  private fresh<T>(map: Map<string, Entry<T>>, key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const e = map.get(key);
    if (e && now - e.at < this.ttlMs) return e.value;
    const next: Entry<T> = { at: now, value: load() };
    // A failed read is not kept: the next call asks again.
    next.value.catch(() => {
      if (map.get(key) === next) map.delete(key);
    });
    map.set(key, next);
    if (map.size > 10_000) for (const [k, old] of map) if (now - old.at > Math.max(this.ttlMs, 60_000)) map.delete(k);
    return next.value;
  }
}
