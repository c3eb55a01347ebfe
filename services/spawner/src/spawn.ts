import {
  FleetError,
  LIFECYCLE,
  SessionEnded,
  Superseded,
  agentPassword,
  buildPromptText,
  endSession,
  errorMessage,
  isRetryable,
  isKnownProject,
  isProviderQuota,
  SANDBOX_GRACE_MS,
  isTerminal,
  mintCallbackToken,
  mintGatewayToken,
  settleEnded,
  type AgentClient,
  type CallbackTokenConfig,
  type FileSpec,
  type GatewayTokenConfig,
  type KnownProjects,
  type MessageContext,
  type ModelSettings,
  type Sandbox,
  type Session,
  type SessionPatch,
  type SessionPhase,
  type SessionRequested,
  type SetupTimings,
} from "@fleet/shared";
import { activeTraceparent, withSpan } from "@fleet/shared/telemetry";
import { SessionLogWriter, runningEvent } from "@fleet/shared/sessions";
import { admit, backOffForQuota, type AdmissionDeps, type AdmissionLimits } from "./admission.js";
import { admissionMetrics } from "@fleet/shared/metrics";
import { createStage, type Stage, type StageDeps } from "@fleet/shared/service";
import { waitHealthy } from "./health.js";
import type { PoolManager, WarmClaim } from "./pool.js";
import { asCardFiles, workspaceChanges } from "@fleet/shared/sessions";

export interface SpawnSettings {
  admission: AdmissionLimits;
  /** When set, each sandbox gets a short-lived token to call back about its own session. */
  callbacks?: { tokens: CallbackTokenConfig; url: string };
  fleet: string;
  /** Projects this fleet serves; a request for another is dead-lettered, storing nothing. */
  projects: KnownProjects;
  instanceId: string;
  agentSecret: string;
  /**
   * The model the agents call. With `gateway`, its baseUrl and apiKey are not used: each agent gets
   * the gateway's URL and a token of its own session instead, and no model key enters a sandbox.
   */
  model: ModelSettings;
  gateway?: { url: string; tokens: GatewayTokenConfig };
  agentReadyMs: number;
  /** The warm pool: a session takes a ready agent from it when one is there, else starts cold. */
  pool?: PoolManager;
}

/** A gateway token outlives its session's deadline by this much (the watchdog ends the session by then). */
const GATEWAY_TOKEN_GRACE_S = 300;

export type SpawnDeps = StageDeps<SpawnSettings>;

/** How far ahead of the fleet's clock a request's requestedAt may be before it is refused as broken. */
export const MAX_REQUEST_CLOCK_AHEAD_MS = 5 * 60_000;

/**
 * session.requested -> a running agent with the prompt, then session.running. Idempotent: a
 * repeated request for a session already set up changes nothing; a redelivery after a crash takes
 * a new attempt, replacing the sandbox the crashed attempt recorded.
 */
export async function handleRequested(deps: SpawnDeps, req: SessionRequested, ctx: MessageContext): Promise<void> {
  const { store } = deps;
  if (!isKnownProject(deps.settings.projects, req.projectId)) {
    throw new FleetError(
      "bad_input",
      `unknown project ${req.projectId}: this fleet serves ${String(deps.settings.projects)}`,
    );
  }
  // Another system's clock may be anywhere: its requestedAt is kept as reported, but the session is
  // created at the time the stream took the request (the fleet's clock, and the same on every
  // delivery), so a request dated 0 does not time out at once nor jump the queue. One dated well
  // ahead is a broken publisher: dead-lettered, so someone sees why.
  if (req.requestedAt > Date.now() + MAX_REQUEST_CLOCK_AHEAD_MS) {
    throw new FleetError(
      "bad_input",
      `requestedAt ${new Date(req.requestedAt).toISOString()} is ${Math.round((req.requestedAt - Date.now()) / 1000)} s ahead of the fleet's clock (at most ${MAX_REQUEST_CLOCK_AHEAD_MS / 60_000} min allowed)`,
    );
  }
  // A session this delivery creates is created with attempt 1 claimed by it, in the same write; an
  // existing one is claimed with a compare-and-set (claimExisting). Admission follows; with no cap
  // configured it seldom waits, so the claim already shows the sandbox being created (a wait under
  // a learned cap writes phase `queued` first).
  const claim: SessionPatch = {
    claimedBy: { seq: ctx.seq, delivery: ctx.deliveryCount },
    ...(uncapped(deps.settings.admission) ? { phase: "sandbox_creating", queuePosition: 0 } : {}),
  };
  const { session: stored, created } = await store.create(
    {
      id: req.sessionId,
      projectId: req.projectId,
      ...(req.cardId ? { cardId: req.cardId } : {}),
      prompt: req.prompt,
      config: req.config,
      requestedAt: req.requestedAt,
      // A session that came straight from the bus begins its trace here (under the publisher's, if it sent one).
      ...(activeTraceparent() ? { trace: activeTraceparent() } : {}),
    },
    ctx.storedAt,
    claim,
  );
  const session = created ? stored : await claimExisting(deps, stored, req, ctx, claim);
  if (!session) return;
  const { attempt } = session;
  const log = deps.logger.child({ sessionId: session.id });
  log.info({ attempt, delivery: ctx.deliveryCount }, "setting up session");
  if (session.cardId) await supersedeCardSessions(deps, session);
  if (session.sandbox) await deps.provider.kill(session.sandbox.id);
  // A pooled sandbox an earlier attempt claimed but never recorded goes too, before this attempt's slot is counted.
  if (attempt > 1) await deps.settings.pool?.releaseEarlierClaims(session.id, attempt);

  const timings: SetupTimings = { queuedMs: Math.max(0, Date.now() - session.createdAt) };
  let sandbox: Sandbox | undefined;
  /** The session runs in `sandbox` (its transition to running is written): the sandbox is no longer this attempt's to kill. */
  let live = false;
  // A ready agent from the warm pool, when there is one within the claim wait: it comes with its
  // fleet-wide slot (already counted under FLEET_MAX_SANDBOXES), so only a per-project cap is waited for.
  const pool = deps.settings.pool;
  const warm = pool ? await pool.claim(session, attempt) : null;
  sandbox = warm?.sandbox;
  const admission = admissionDeps(deps);
  try {
    if (warm) {
      if (deps.settings.admission.perProject > 0)
        await withSpan("setup.admission", {}, () =>
          admit(admission, session, deps.settings.admission, ctx, { holdsGlobal: true }),
        );
      await admitted(deps, session, timings);
    }
    const started = warm
      ? await withSpan("setup.warm_bind", { "sandbox.id": warm.sandbox.id }, () =>
          bindWarm(deps, session, warm, timings),
        )
      : { sandbox: await admitAndCreate(deps, admission, session, attempt, timings, ctx), pid: undefined };
    sandbox = started.sandbox;
    // A first attempt on its first delivery has never had a writer: nothing to look up in the store.
    const writer = await SessionLogWriter.open(deps, session.id, { fresh: attempt === 1 && ctx.deliveryCount === 1 });
    // Setup's lines go out while setup goes on; all are confirmed before the session is declared running.
    const pending = inFlight();
    pending.add(
      writer.append([
        {
          kind: "system",
          key: `setup:${attempt}:sandbox`,
          line: warm
            ? `Warm sandbox ${sandbox.id} claimed from the pool (${deps.provider.name}, ready ${ms(timings.warmAgeMs)} before, claim ${ms(timings.claimMs)})`
            : `Sandbox ${sandbox.id} ready (${deps.provider.name}, ${ms(timings.sandboxCreateMs)})`,
        },
      ]),
    );
    const ready = sandbox;
    const restored = await withSpan("setup.restore", { files: req.files.length }, () =>
      restoreFiles(deps, session, ready, req.files, timings),
    );
    if (restored > 0)
      pending.add(
        writer.append([{ kind: "system", key: `setup:${attempt}:restore`, line: `Restored ${restored} file(s)` }]),
      );
    let client: AgentClient;
    let pid: number | undefined;
    if (warm) {
      client = warm.client;
      pid = started.pid;
    } else {
      const starting = slowPhase(deps, session.id, "server_starting");
      ({ client, pid } = await withSpan("setup.server_start", {}, () =>
        startAgent(deps, session, ready, attempt, timings),
      ).finally(() => starting.settled()));
      pending.add(
        writer.append([
          { kind: "system", key: `setup:${attempt}:server`, line: `Agent server ready (${ms(timings.serverStartMs)})` },
        ]),
      );
    }
    const agent = client;
    const { agentSessionId, messageId } = await withSpan("setup.prompt_send", {}, () =>
      sendPrompt(deps, session, agent, timings),
    );
    timings.totalMs = Date.now() - session.createdAt - (timings.queuedMs ?? 0);
    await pending.confirmed();
    const running = await store.transition(session.id, {
      from: LIFECYCLE.running.from,
      to: "running",
      attempt,
      set: {
        phase: "running",
        startedAt: Date.now(),
        agentSessionId,
        agentMessageId: messageId,
        sandbox: {
          id: sandbox.id,
          provider: sandbox.provider,
          host: sandbox.url(sandbox.agentPort),
          ...(pid ? { agentPid: pid } : {}),
          ...(warm ? { pooled: true } : {}),
        },
        metrics: { ...session.metrics, setup: timings },
      },
    });
    if (!running) throw new SessionEnded(session.id, "before its agent ran");
    live = true;
    await writer.append([
      { kind: "system", key: `setup:${attempt}:prompt`, line: `Prompt sent; setup took ${ms(timings.totalMs)}` },
    ]);
    for (const [step, value] of Object.entries(timings))
      if (typeof value === "number") deps.metrics.setupStep.observe({ step: step.replace(/Ms$/, "") }, value / 1000);
    await republishRunning(deps, running, writer.seq);
  } catch (err) {
    // A later attempt owns the session (this delivery's ack wait lapsed during setup and a redelivery
    // claimed the next attempt): this one writes nothing of the session and leaves its slots alone.
    if (await superseded(deps, session.id, attempt)) return dropStale(deps, log, attempt, sandbox);
    if (err instanceof SessionEnded) {
      log.info("session ended during setup; sandbox released");
      if (sandbox) await deps.provider.kill(sandbox.id).catch(() => undefined);
      // Its end may have come before the slots were recorded on it, so its ender did not free them.
      await store.releaseSlots(session.id).catch(() => undefined);
      return;
    }
    if (isRetryable(err) && !ctx.finalDelivery) {
      // Released for another try; the next attempt replaces this sandbox. Once the session runs in
      // it, the sandbox is the session's: a failed publish of session.running (which may even have
      // landed: a timeout says nothing) is repaired by the redelivery, which republishes it.
      if (sandbox && !live) await deps.provider.kill(sandbox.id).catch(() => undefined);
      throw err;
    }
    const code = err instanceof FleetError ? err.code : "internal";
    const exhausted = isRetryable(err);
    const message = exhausted ? `gave up after ${ctx.deliveryCount} attempts: ${errorMessage(err)}` : errorMessage(err);
    log.warn({ code, attempt, err: message }, "setup failed");
    const ended = await endSession(
      deps,
      session.id,
      { status: "failed", error: { code, message: message.slice(0, 2_000) } },
      { metrics: { ...session.metrics, setup: timings } },
      { attempt },
    );
    // Taken over since the check above: the attempt guard kept this end off the new owner's session.
    if (!ended && (await superseded(deps, session.id, attempt))) return dropStale(deps, log, attempt, sandbox);
    // A request that ran out of retries is also recorded with the dead messages.
    if (exhausted) throw new FleetError(code, message);
  }
}

/**
 * A request for a session that already exists: its next setup attempt, claimed for this delivery,
 * as the session now stands; undefined when there is nothing (more) for this delivery to set up.
 */
async function claimExisting(
  deps: SpawnDeps,
  session: Session,
  req: SessionRequested,
  ctx: MessageContext,
  claim: SessionPatch,
): Promise<Session | undefined> {
  // Session ids are global and chosen by the submitter: a request of another project must neither
  // set up, republish nor learn anything of this one (the create changed nothing of it). The reason
  // does not name the owner's project.
  if (session.projectId !== req.projectId) {
    throw new FleetError(
      "bad_input",
      `session ${req.sessionId} exists for another project: a request of project ${req.projectId} cannot use its id`,
    );
  }
  if (session.status === "running") {
    await republishRunning(deps, session);
    return undefined;
  }
  // An ended session may still owe its event, hold slots or have a sandbox (its ender died midway).
  if (isTerminal(session.status)) {
    await settleEnded(deps, session);
    return undefined;
  }
  // A delivery of the message whose later delivery claimed the attempt is stale (its holder stalled
  // past the ack wait, the message went on): it neither acts nor acknowledges, or the message the
  // later holder needs redelivered should it die would be gone.
  if (claimedLater(session, ctx))
    throw new Superseded(`session ${session.id}: a later delivery of its request holds it`);
  // A first delivery of a request whose session already has an attempt is a duplicate request:
  // the delivery that owns the attempt carries on; only a redelivery takes over.
  if (ctx.deliveryCount === 1 && session.attempt > 0) return undefined;
  const attempt = session.attempt + 1;
  // The claim is a compare-and-set on the attempt number: of duplicate requests (each a first
  // delivery) one wins attempt 1; a redelivery (the holder stopped, or released the message at
  // shutdown) reads the attempt its predecessor recorded and claims the next.
  if (await deps.store.claimAttempt(session.id, attempt, claim)) return { ...session, ...claim, attempt };
  // Lost the claim: to a duplicate request (acknowledged as such), or to another delivery of
  // this same message, which holds it now and decides its fate.
  const now = await deps.store.get(session.id);
  if (now?.claimedBy?.seq === ctx.seq)
    throw new Superseded(`session ${session.id}: another delivery of its request claimed it`);
  return undefined;
}

/** Whether a later setup attempt has taken the session over: still active, at another attempt. */
async function superseded(deps: SpawnDeps, sessionId: string, attempt: number): Promise<boolean> {
  // Unreadable: not known to be superseded; the attempt-guarded writes that follow stay safe either way.
  const now = await deps.store.get(sessionId).catch(() => null);
  return now !== null && !isTerminal(now.status) && now.attempt !== attempt;
}

/**
 * A superseded attempt stops: only the sandbox it made (or claimed) is its own to kill, and the
 * message is left to the delivery that owns the later attempt (Superseded: no verdict from this one).
 */
async function dropStale(
  deps: SpawnDeps,
  log: SpawnDeps["logger"],
  attempt: number,
  sandbox: Sandbox | undefined,
): Promise<never> {
  log.info({ attempt, sandboxId: sandbox?.id }, "setup attempt superseded by a later one; its sandbox released");
  if (sandbox) await deps.provider.kill(sandbox.id).catch(() => undefined);
  throw new Superseded(`setup attempt ${attempt} replaced by a later attempt`);
}

/**
 * Writes not waited for one by one: `confirmed()` waits for all of them and throws the first
 * failure. Until then a failure is held, not left unhandled.
 */
function inFlight(): { add(write: Promise<unknown>): void; confirmed(): Promise<void> } {
  const sent: Array<Promise<unknown>> = [];
  return {
    add(write) {
      write.catch(() => undefined);
      sent.push(write);
    },
    async confirmed() {
      await Promise.all(sent);
    },
  };
}

function admissionDeps(deps: SpawnDeps): AdmissionDeps {
  return {
    store: deps.store,
    provider: deps.provider,
    fleet: deps.settings.fleet,
    logger: deps.logger,
    metrics: admissionMetrics(deps.metrics.registry),
  };
}

/** No admission cap is configured: a session waits only under a learned cap. */
function uncapped(limits: AdmissionLimits): boolean {
  return limits.global <= 0 && limits.perProject <= 0;
}

/** Admission and the start of sandbox creation are one write, with the slots the session now holds. */
async function admitted(deps: SpawnDeps, session: Session, timings: SetupTimings): Promise<void> {
  timings.queuedMs = Math.max(0, Date.now() - session.createdAt);
  await guard(
    session.id,
    deps.store.patch(session.id, { phase: "sandbox_creating", queuePosition: 0, slotsHeld: true }),
  );
}

/**
 * Admission, then the sandbox. A quota answer from the provider never fails the session: it goes
 * back to the queue (slots given back, the fleet's cap lowered) for the answer's Retry-After and is
 * admitted again, within the same attempt and delivery, however many times the provider says no.
 * Warm-pool slots are made room for only while the session waits for a cold start.
 */
async function admitAndCreate(
  deps: SpawnDeps,
  admission: AdmissionDeps,
  session: Session,
  attempt: number,
  timings: SetupTimings,
  ctx: MessageContext,
): Promise<Sandbox> {
  const limits = deps.settings.admission;
  const pool = deps.settings.pool;
  for (let answers = 0; ; ) {
    const { slots, queued, capRev } = await withSpan("setup.admission", {}, () =>
      admit(admission, session, limits, ctx, pool ? { makeRoom: () => pool.makeRoom() } : {}),
    );
    // Admitted at once, and the claim already showed the sandbox being created: the slots are
    // recorded with the sandbox instead of in a write of their own. Until then a spawner that dies
    // leaves them to the watchdog's sweep, a session ended meanwhile to this setup's release.
    const recordLater = answers === 0 && !queued && uncapped(limits);
    if (recordLater) timings.queuedMs = Math.max(0, Date.now() - session.createdAt);
    else await admitted(deps, session, timings);
    try {
      return await withSpan("setup.sandbox_create", {}, () =>
        createSandbox(deps, session, attempt, timings, recordLater && slots),
      );
    } catch (err) {
      if (!isProviderQuota(err)) throw err;
      await backOffForQuota(admission, session, err, capRev, ++answers, limits, ctx);
    }
  }
}

/** A later delivery of this same request message claimed the session's current attempt. */
function claimedLater(s: Session, ctx: MessageContext): boolean {
  return s.claimedBy?.seq === ctx.seq && s.claimedBy.delivery > ctx.deliveryCount;
}

/**
 * `logSeq`: only from the setup that has just written the session's log and its `running` document
 * (both go in the event), never from a mere republish.
 */
async function republishRunning(deps: SpawnDeps, s: Session, logSeq?: number): Promise<void> {
  const event = runningEvent(s, logSeq !== undefined ? { logSeq, withDocument: true } : {});
  if (event) await deps.bus.publish("running", event);
}

/**
 * The original's rule: a new session for a card ends the card's older active sessions first. What
 * such a session's agent has changed so far is saved to the card before its sandbox goes, so the
 * new session starts from it rather than from older files.
 */
async function supersedeCardSessions(deps: SpawnDeps, session: Session): Promise<void> {
  const active = await deps.store.activeSessionsForCard(session.cardId as string);
  for (const other of active) {
    if (other.id === session.id || other.createdAt > session.createdAt) continue;
    await handOverFiles(deps, other).catch((err: unknown) =>
      deps.logger.warn(
        { sessionId: other.id, err: errorMessage(err) },
        "could not save the superseded session's files",
      ),
    );
    await endSession(deps, other.id, {
      status: "cancelled",
      reason: `superseded by session ${session.id} for card ${session.cardId}`,
    });
  }
}

async function handOverFiles(deps: SpawnDeps, other: Session): Promise<void> {
  if (!other.sandbox || !other.cardId) return;
  const sandbox = await deps.provider.connect(other.sandbox.id);
  if (!sandbox) return;
  const changes = await workspaceChanges(sandbox);
  await deps.store.saveCardFiles(other.cardId, asCardFiles(other.cardId, other.id, changes), changes.deleted);
}

/** A patch that did not apply means the session is no longer active: stop setting it up. */
async function guard(sessionId: string, applied: Promise<boolean>): Promise<void> {
  if (!(await applied)) throw new SessionEnded(sessionId, "during setup");
}

/** How long a setup step runs before its phase is worth a store write (a step of milliseconds has none). */
export const SLOW_STEP_MS = 250;

/**
 * A phase written only if its step is slow: once the step has taken SLOW_STEP_MS, and only while the
 * session is still pending. `settled()` ends the wait: nothing is written if the step ended first,
 * else it waits for the write (SessionEnded if the session ended meanwhile).
 */
function slowPhase(deps: SpawnDeps, sessionId: string, phase: SessionPhase): { settled(): Promise<void> } {
  let write: Promise<void> | undefined;
  const timer = setTimeout(() => {
    write = guard(sessionId, deps.store.patch(sessionId, { phase }, ["pending"]));
    write.catch(() => undefined);
  }, SLOW_STEP_MS);
  return {
    settled() {
      clearTimeout(timer);
      return write ?? Promise.resolve();
    },
  };
}

async function createSandbox(
  deps: SpawnDeps,
  session: Session,
  attempt: number,
  timings: SetupTimings,
  slotsHeld: boolean,
): Promise<Sandbox> {
  const started = Date.now();
  const cb = deps.settings.callbacks;
  const sandbox = await deps.provider.create({
    metadata: {
      fleet: deps.settings.fleet,
      sessionId: session.id,
      projectId: session.projectId,
      attempt: String(attempt),
    },
    envs: cb
      ? {
          FLEET_CALLBACK_URL: `${cb.url.replace(/\/$/, "")}/v1/callbacks/sessions/${session.id}`,
          FLEET_CALLBACK_TOKEN: await mintCallbackToken(
            { ...cb.tokens, ttlSeconds: Math.ceil((session.deadlineAt - Date.now()) / 1000) + 300 },
            session.id,
            attempt,
          ),
        }
      : {},
    // The provider's own limit outlives the session's deadline a little, as a backstop to the
    // watchdog; where the provider caps a sandbox's timeout, the poller extends it while it runs.
    timeoutMs: Math.min(
      deps.provider.maxTimeoutMs ?? Number.POSITIVE_INFINITY,
      Math.max(60_000, session.deadlineAt - Date.now() + SANDBOX_GRACE_MS),
    ),
    // All the network an isolated sandbox gets: its model endpoint (the gateway) and the fleet's callback url.
    egress: [deps.settings.gateway?.url ?? deps.settings.model.baseUrl, ...(cb ? [cb.url] : [])],
  });
  timings.sandboxCreateMs = Date.now() - started;
  // Recorded at once, so a reaper or a later attempt can find it whatever happens next.
  const recorded = await deps.store.patch(session.id, {
    sandbox: { id: sandbox.id, provider: sandbox.provider },
    phase: "restoring",
    ...(slotsHeld ? { slotsHeld: true as const } : {}),
  });
  if (!recorded) {
    await deps.provider.kill(sandbox.id);
    throw new SessionEnded(session.id, "while its sandbox was created");
  }
  return sandbox;
}

/**
 * A claimed warm sandbox becomes the session's: recorded on the document at once (so the reaper and a
 * later attempt find it), and given what a cold sandbox gets in its environment at create, here as
 * a file in its home (its agent started before the session existed).
 */
async function bindWarm(
  deps: SpawnDeps,
  session: Session,
  warm: WarmClaim,
  timings: SetupTimings,
): Promise<{ sandbox: Sandbox; pid: number | undefined }> {
  timings.warm = true;
  timings.claimMs = warm.claimMs;
  timings.warmAgeMs = Math.max(0, Date.now() - (warm.entry.readyAt ?? warm.entry.createdAt));
  timings.sandboxCreateMs = 0;
  timings.serverStartMs = 0;
  const recorded = await deps.store.patch(session.id, {
    sandbox: { id: warm.sandbox.id, provider: warm.sandbox.provider, pooled: true },
    phase: "restoring",
  });
  if (!recorded) {
    await deps.provider.kill(warm.sandbox.id);
    throw new SessionEnded(session.id, "while it claimed a warm sandbox");
  }
  const cb = deps.settings.callbacks;
  if (cb) {
    const attempt = warm.entry.attempt ?? session.attempt;
    const callback = {
      url: `${cb.url.replace(/\/$/, "")}/v1/callbacks/sessions/${session.id}`,
      token: await mintCallbackToken(
        { ...cb.tokens, ttlSeconds: Math.ceil((session.deadlineAt - Date.now()) / 1000) + 300 },
        session.id,
        attempt,
      ),
    };
    await warm.sandbox.writeFiles([{ path: ".fleet/callback.json", content: JSON.stringify(callback) }], {
      base: "home",
    });
  }
  return { sandbox: warm.sandbox, pid: warm.entry.agentPid };
}

async function restoreFiles(
  deps: SpawnDeps,
  session: Session,
  sandbox: Sandbox,
  files: readonly FileSpec[],
  timings: SetupTimings,
): Promise<number> {
  const started = Date.now();
  const saved = session.cardId ? await deps.store.cardFiles(session.cardId) : [];
  // Files sent with the request win over the card's saved files of the same path.
  const byPath = new Map<string, { path: string; content: Uint8Array | string }>();
  for (const f of [...saved, ...files])
    byPath.set(f.path, {
      path: f.path,
      content: f.encoding === "base64" ? Buffer.from(f.content, "base64") : f.content,
    });
  if (byPath.size > 0) await sandbox.writeFiles([...byPath.values()]);
  await sandbox.writeFiles(deps.runtime.homeFiles(), { base: "home" });
  // A baseline commit, so the agent's diff shows its own changes and not the restored files.
  await sandbox.run({ command: "git", args: ["add", "-A"] }, { timeoutMs: 30_000 });
  await sandbox.run(
    { command: "git", args: ["commit", "-q", "--allow-empty", "-m", "restored files"] },
    { timeoutMs: 30_000 },
  );
  timings.restoreMs = Date.now() - started;
  return byPath.size;
}

async function startAgent(
  deps: SpawnDeps,
  session: Session,
  sandbox: Sandbox,
  attempt: number,
  timings: SetupTimings,
): Promise<{ client: AgentClient; pid: number }> {
  const started = Date.now();
  const password = agentPassword(deps.settings.agentSecret, session.id, attempt);
  const models = unique([
    session.config.model ?? deps.settings.model.models[0] ?? "default",
    ...session.config.fallbackModels,
    ...deps.settings.model.models,
  ]);
  const gateway = deps.settings.gateway;
  const model: ModelSettings = {
    ...deps.settings.model,
    ...(gateway
      ? {
          baseUrl: gateway.url,
          // Valid while the session is (the gateway checks that live); the expiry bounds it past the deadline.
          apiKey: await mintGatewayToken(
            gateway.tokens,
            { sessionId: session.id, attempt, projectId: session.projectId, models },
            (session.deadlineAt - Date.now()) / 1000 + GATEWAY_TOKEN_GRACE_S,
          ),
        }
      : {}),
    models,
    ...(session.config.maxTokens ? { maxTokens: session.config.maxTokens } : {}),
  };
  const { pid } = await sandbox.startBackground(
    deps.runtime.launchCommand({ port: sandbox.agentPort, password, workspace: sandbox.workspace, model }),
  );
  const client = deps.runtime.connect({ baseUrl: sandbox.url(sandbox.agentPort), password });
  await waitHealthy(client, sandbox, deps.settings.agentReadyMs);
  timings.serverStartMs = Date.now() - started;
  return { client, pid };
}

async function sendPrompt(
  deps: SpawnDeps,
  session: Session,
  client: AgentClient,
  timings: SetupTimings,
): Promise<{ agentSessionId: string; messageId: string }> {
  // No write of its own for "prompting": it takes a few milliseconds, and the running transition follows.
  let started = Date.now();
  const [agentSession] = await Promise.all([
    client.createSession(`session ${session.id}`),
    // The password is checked on every route; a status call proves it before the prompt goes out.
    client.status().then(() => {
      timings.authMs = Date.now() - started;
    }),
  ]);
  timings.sessionCreateMs = Date.now() - started;
  started = Date.now();
  const { messageId } = await client.prompt(agentSession.id, {
    text: buildPromptText(session.prompt, session.config.tools),
    ...(session.config.systemPrompt ? { system: session.config.systemPrompt } : {}),
    model: session.config.model ?? deps.settings.model.models[0] ?? "default",
  });
  timings.promptSendMs = Date.now() - started;
  return { agentSessionId: agentSession.id, messageId };
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

function ms(v: number | undefined): string {
  return v === undefined ? "?" : `${(v / 1000).toFixed(1)} s`;
}

/**
 * The spawner stage: consumes session.requested. Each request is held, with progress heartbeats,
 * while it waits for admission and while its sandbox and agent are set up.
 */
export function createSpawner(deps: SpawnDeps, options: { maxInFlight: number; heartbeatMs: number }): Stage {
  return createStage(deps.bus, "spawner", (msg, ctx) => handleRequested(deps, msg, ctx), options);
}
