import {
  SessionEnded,
  ShuttingDown,
  errorMessage,
  isTerminal,
  type LearnedCap,
  type MessageContext,
  type ProviderQuotaError,
  type SandboxProvider,
  type Session,
  type SessionDocStore,
  type SlotStore,
  UNBOUNDED_SLOTS,
} from "@fleet/shared";
import type { Logger } from "@fleet/shared/log";
import type { AdmissionMetrics } from "@fleet/shared/metrics";
import {
  afterQuiet,
  afterQuotaHit,
  effectiveCap,
  fairPosition,
  quotaBackoffMs,
  type CapChange,
  type CapPolicy,
} from "./admission-cap.js";

/** Admission reads the session and the queue, and takes slots: nothing else of the store. */
type AdmissionStore = SessionDocStore & SlotStore;

export interface AdmissionLimits {
  /** Sandboxes running at once across the fleet; 0 = no cap configured (one is learned from quota answers). */
  global: number;
  /** Sandboxes running at once per project; 0 = no cap. */
  perProject: number;
  /** How often a waiting session looks again. */
  pollMs: number;
  /** How the fleet-wide cap is learned from the provider's quota answers. */
  policy: CapPolicy;
}

export interface AdmissionDeps {
  store: AdmissionStore;
  provider: SandboxProvider;
  fleet: string;
  logger: Logger;
  metrics: AdmissionMetrics;
}

type Waiting = Awaited<ReturnType<SessionDocStore["waitingSessions"]>>;

/**
 * The waiting list, read at most once per `maxAgeMs` per store (per spawner instance), however many
 * sessions it holds waiting: each computes its own place from the same list.
 */
const waitingLists = new WeakMap<object, { at: number; list: Promise<Waiting> }>();
function waitingSessions(store: AdmissionStore, maxAgeMs: number): Promise<Waiting> {
  const cached = waitingLists.get(store);
  if (cached && Date.now() - cached.at < maxAgeMs) return cached.list;
  const list = store.waitingSessions();
  waitingLists.set(store, { at: Date.now(), list });
  list.catch(() => waitingLists.delete(store));
  return list;
}

/**
 * The learned cap, read at most once per `maxAgeMs` per store (per spawner instance): a burst of
 * sessions admitted together shares one read. A change reaches every spawner within that time.
 */
const learnedCaps = new WeakMap<object, { at: number; cap: Promise<LearnedCap | null> }>();
function learnedCapOf(store: AdmissionStore, maxAgeMs: number): Promise<LearnedCap | null> {
  const cached = learnedCaps.get(store);
  if (cached && Date.now() - cached.at < maxAgeMs) return cached.cap;
  const cap = store.learnedCap(GLOBAL_SCOPE);
  learnedCaps.set(store, { at: Date.now(), cap });
  cap.catch(() => learnedCaps.delete(store));
  return cap;
}

/** The scope of the fleet-wide slots and of the learned cap. */
export const GLOBAL_SCOPE = "global";

/**
 * Waits until the session may hold a sandbox and takes its slots. The fleet-wide slot is always
 * taken (so the fleet knows what it holds when the provider says "limit"), under the configured
 * cap or the learned one, whichever is lower; with `holdsGlobal` (a warm sandbox brings its own)
 * only a per-project cap is waited for. Sessions wait in a fair order (fairPosition): the oldest
 * waiting session of each project in turn. Never fails for a cap: the request's message is held
 * (with progress heartbeats) while the document shows phase `queued` and the queue position.
 * Answers whether it took any slot, whether it wrote phase `queued` on the document (it waited), and
 * the revision of the learned cap it was admitted under.
 */
export async function admit(
  deps: AdmissionDeps,
  session: Session,
  limits: AdmissionLimits,
  ctx: MessageContext,
  options: {
    holdsGlobal?: boolean;
    /** Frees a slot held by an unclaimed warm-pool sandbox, so the pool never keeps a session queued. */
    makeRoom?: () => Promise<boolean>;
  } = {},
): Promise<{ slots: boolean; queued: boolean; capRev: number }> {
  const { store } = deps;
  let lastPosition = -1;
  // A slot this session still holds from an attempt that did not finish (a crash, a retryable
  // failure) would count against it: it is given back and taken again in turn. (`session` is as
  // claimed: only an attempt after the first, or a redelivery, can find one.) A warm sandbox's
  // slot is the session's own and stays.
  if (!options.holdsGlobal && (session.attempt > 1 || ctx.deliveryCount > 1)) await store.releaseSlots(session.id);
  deps.metrics.waiting.inc();
  try {
    for (;;) {
      if (ctx.signal.aborted) throw new ShuttingDown("while queued");
      const learned = options.holdsGlobal ? null : await learnedCapOf(store, limits.pollMs / 4);
      const globalCap = effectiveCap(limits.global, learned);
      if (!options.holdsGlobal) showCap(deps.metrics, globalCap, learned);
      const scopes: Array<[string, number]> = [];
      if (!options.holdsGlobal) scopes.push([GLOBAL_SCOPE, globalCap]);
      if (limits.perProject > 0) scopes.push([`project:${session.projectId}`, limits.perProject]);
      const capRev = learned?.rev ?? -1;
      const queued = lastPosition !== -1;
      if (scopes.length === 0) return { slots: false, queued, capRev };
      // Nothing caps anything: no queue to keep, the slot only counts.
      if (scopes.every(([, cap]) => cap === Number.POSITIVE_INFINITY)) {
        if (await takeAll(store, scopes, session)) return { slots: true, queued, capRev };
        await pause(limits.pollMs, ctx);
        continue;
      }
      const current = await store.get(session.id);
      if (!current || isTerminal(current.status)) throw new SessionEnded(session.id, "while queued");
      // What each project holds now decides the order (fair share), and the totals what is free.
      const held = await Promise.all(
        scopes.map(([scope]) =>
          scope === GLOBAL_SCOPE
            ? store.slotsByProject(scope)
            : store.slotsInUse(scope).then((total) => ({ total, byProject: undefined })),
        ),
      );
      const byProject = held.find((h) => h.byProject)?.byProject ?? new Map<string, number>();
      const position = fairPosition(await waitingSessions(store, limits.pollMs / 4), session, byProject);
      // Only as many of the first waiting sessions as there are free slots may try, so none overtakes
      // one ahead of it in the fair order.
      const used = held.map((h) => h.total);
      const free = Math.min(...scopes.map(([, cap], i) => cap - (used[i] ?? 0)));
      if (position < free && (await takeAll(store, scopes, session))) return { slots: true, queued, capRev };
      if (position === 0 && free <= 0 && options.makeRoom && (await options.makeRoom())) continue;
      // Held back by a learned cap: time may have come to try one more.
      if (position === 0 && free <= 0 && learned?.cap !== undefined && learned.cap === globalCap)
        await raiseIfQuiet(deps, learned, limits);
      if (position !== lastPosition) {
        deps.logger.debug({ sessionId: session.id, position, free, cap: globalCap }, "queued for admission");
        await store.patch(session.id, { phase: "queued", queuePosition: position });
        lastPosition = position;
      }
      ctx.working();
      await pause(limits.pollMs * (0.75 + Math.random() / 2), ctx);
    }
  } finally {
    deps.metrics.waiting.dec();
  }
}

/**
 * A quota answer to this session's create: its slots go back, the fleet's learned cap goes down as
 * far as the answer proves (a concurrent-limit answer; a rate answer teaches nothing of the
 * concurrency), and the session waits in the queue (its place kept: it was created when
 * it was) for at least the answer's Retry-After, jittered, before admission runs again; a
 * concurrency answer without one goes back to admission after one poll, under the lowered cap.
 */
export async function backOffForQuota(
  deps: AdmissionDeps,
  session: Session,
  err: ProviderQuotaError,
  /** The learned cap's revision when the session was admitted (see admit). */
  admittedUnderRev: number,
  answers: number,
  limits: AdmissionLimits,
  ctx: MessageContext,
): Promise<void> {
  const { store } = deps;
  deps.metrics.quotaAnswers.inc({ kind: err.kind });
  await store.releaseSlots(session.id);
  // A rate answer says nothing of how many sandboxes the account may hold: the session only waits.
  const held = err.kind === "concurrency" ? await heldByFleet(deps) : undefined;
  if (held !== undefined)
    await changeCap(deps, (current) =>
      afterQuotaHit(
        current,
        {
          scope: GLOBAL_SCOPE,
          held,
          at: Date.now(),
          admittedUnderRev,
          ...(err.limit !== undefined ? { limit: err.limit } : {}),
          ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
        },
        limits.policy,
      ),
    );
  // A concurrency answer without Retry-After: the lowered cap now holds the session back, in its
  // fair place; a private backoff would only leave the slot idle while the head of the queue sleeps
  // (or let later sessions overtake it). Rate answers, and any answer naming a Retry-After, wait.
  const waitMs =
    err.kind === "concurrency" && err.retryAfterMs === undefined
      ? limits.pollMs
      : quotaBackoffMs(err.retryAfterMs, answers);
  const position = fairPosition(
    await store.waitingSessions(),
    session,
    (await store.slotsByProject(GLOBAL_SCOPE)).byProject,
  );
  if (!(await store.patch(session.id, { phase: "queued", queuePosition: position }, ["pending"])))
    throw new SessionEnded(session.id, "while it waited out a quota answer");
  deps.logger.info(
    { sessionId: session.id, answers, held, retryAfterMs: err.retryAfterMs, waitMs, position },
    "provider quota answer: session queued again",
  );
  deps.metrics.waiting.inc();
  try {
    ctx.working();
    await pause(waitMs, ctx);
  } finally {
    deps.metrics.waiting.dec();
  }
}

/** This fleet's sandboxes the provider holds now; the fleet's slots when the provider cannot say. */
async function heldByFleet(deps: AdmissionDeps): Promise<number> {
  try {
    return (await deps.provider.list({ fleet: deps.fleet })).length;
  } catch (err) {
    deps.logger.warn({ err: errorMessage(err) }, "could not list the provider's sandboxes after a quota answer");
    return Math.max(0, (await deps.store.slotsInUse(GLOBAL_SCOPE)) - 1);
  }
}

async function raiseIfQuiet(deps: AdmissionDeps, learned: LearnedCap, limits: AdmissionLimits): Promise<void> {
  const ceiling = limits.global > 0 ? limits.global : Number.POSITIVE_INFINITY;
  const next = afterQuiet(learned, Date.now(), ceiling, limits.policy);
  if (next && (await deps.store.replaceLearnedCap(learned.rev, next))) {
    learnedCaps.delete(deps.store);
    deps.logger.info({ from: learned.cap, to: next.cap }, "admission cap raised: no quota answer for a while");
  }
}

/** One compare-and-set of the learned cap, retried a few times when another spawner changed it first. */
async function changeCap(deps: AdmissionDeps, change: (current: LearnedCap | null) => CapChange): Promise<void> {
  for (let tries = 0; tries < 5; tries++) {
    const current = await deps.store.learnedCap(GLOBAL_SCOPE);
    const next = change(current);
    if (await deps.store.replaceLearnedCap(current?.rev ?? -1, next)) {
      learnedCaps.delete(deps.store);
      if (next.cap !== current?.cap)
        deps.logger.info(
          { from: current?.cap ?? null, to: next.cap, providerLimit: next.providerLimit, hits: next.hits },
          "admission cap lowered after a provider quota answer",
        );
      return;
    }
  }
}

function showCap(metrics: AdmissionMetrics, cap: number, learned: LearnedCap | null): void {
  metrics.cap.set(cap);
  if (learned?.cap !== undefined) metrics.learnedCap.set(learned.cap);
}

async function takeAll(
  store: AdmissionStore,
  scopes: Array<[string, number]>,
  session: Pick<Session, "id" | "projectId">,
): Promise<boolean> {
  for (const [scope, cap] of scopes) {
    if (!(await store.acquireSlot(scope, Math.min(cap, UNBOUNDED_SLOTS), session.id, session.projectId))) {
      await store.releaseSlots(session.id);
      return false;
    }
  }
  return true;
}

/** Sleeps `ms`, sending progress heartbeats; ShuttingDown when the instance stops meanwhile. */
async function pause(ms: number, ctx: MessageContext): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (ctx.signal.aborted) throw new ShuttingDown("while queued");
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(5_000, until - Date.now()));
      function done(): void {
        clearTimeout(timer);
        ctx.signal.removeEventListener("abort", done);
        resolve();
      }
      ctx.signal.addEventListener("abort", done, { once: true });
    });
    ctx.working();
  }
  if (ctx.signal.aborted) throw new ShuttingDown("while queued");
}
