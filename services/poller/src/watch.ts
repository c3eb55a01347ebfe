import {
  FleetError,
  agentFinished,
  agentPassword,
  pooledAgentPassword,
  endSession,
  errorMessage,
  extractOutput,
  extractUsage,
  isTerminal,
  settleEnded,
  toolLines,
  type AgentClient,
  type AgentMessage,
  type AgentPart,
  type EndRequest,
  type Logger,
  type MessageContext,
  type ProgressReply,
  type RunningSession,
  type Sandbox,
  type Session,
  type SessionProgress,
  type SessionRunning,
} from "@fleet/shared";
import { recordSpan } from "@fleet/shared/telemetry";
import { createStage, type Stage, type StageDeps } from "@fleet/shared/service";
import { SessionLogWriter, saveCardFiles } from "@fleet/shared/sessions";
import { LifetimeKeeper } from "./lifetime.js";
import { WatchLease } from "./lease.js";

export interface WatchSettings {
  agentSecret: string;
  /** Safety-net status check interval, for when the event stream is cut. */
  statusIntervalMs: number;
  /**
   * How often a watch re-reads its session from the store to notice an end decided elsewhere
   * (cancel, deadline). Those also kill the sandbox themselves, so this is a backstop, kept apart
   * from the agent status check so that watching many sessions costs the store little.
   */
  storeCheckMs: number;
  /** How long the agent may be unreachable before the session fails. */
  unreachableMs: number;
  /** A busy agent with no new event or part for this long is stuck: escalate and fail `stalled`. */
  quietMs: number;
  /** How long each escalation step (abort, kill the agent process) is given to make the agent idle. */
  escalationStepMs: number;
  /**
   * The watch lease on the session document: renewed once half of it is left, and no action is
   * taken on the session once it lapsed (the watchdog then hands the session to a new watch).
   */
  leaseMs: number;
}

export type WatchDeps = StageDeps<WatchSettings>;

/** What a watch keeps of its session: the document without its prompt, as `session.running` carries it. */
type WatchedSession = RunningSession;

/**
 * session.running -> watch the agent until the session ends. A redelivery (another poller after a
 * crash) re-attaches to the same agent and continues the log where the stored lines end.
 */
export async function handleRunning(deps: WatchDeps, msg: SessionRunning, ctx: MessageContext): Promise<void> {
  const carried = startingDocument(deps, msg, ctx);
  const readAt = carried ? Math.min(msg.at, Date.now()) : Date.now();
  const session = carried ?? (await deps.store.get(msg.sessionId));
  if (!session) throw new FleetError("not_found", `no session ${msg.sessionId}`);
  if (session.attempt !== msg.attempt) return;
  if (isTerminal(session.status)) {
    // Ended while this message waited (or the poller that ended it died before it published):
    // its event may still be owed, its slots held and its sandbox alive.
    await settleEnded(deps, session);
    return;
  }
  if ((session.rewatches ?? 0) !== (msg.rewatch ?? 0)) {
    // The watchdog republished this session after its lease lapsed: that newer message's watch has it.
    deps.logger.info(
      { sessionId: session.id, round: msg.rewatch ?? 0, current: session.rewatches ?? 0 },
      "stale watch message; a newer one has the session",
    );
    return;
  }
  const sandbox = await deps.provider.connect(msg.sandboxId);
  if (!sandbox) {
    const keeper = new LifetimeKeeper(deps.provider, msg.sandboxId, session.deadlineAt, deps.logger);
    const cause = keeper.lapseCause(session.startedAt);
    deps.logger.warn({ sessionId: session.id, sandboxId: msg.sandboxId, cause }, "sandbox gone before the watch");
    await fail(deps, session, "sandbox_lost", `sandbox ${msg.sandboxId} is gone${cause}`);
    return;
  }
  const client = deps.runtime.connect({
    baseUrl: msg.sandboxHost ?? sandbox.url(sandbox.agentPort),
    password: session.sandbox?.pooled
      ? pooledAgentPassword(deps.settings.agentSecret, msg.sandboxId)
      : agentPassword(deps.settings.agentSecret, session.id, session.attempt),
  });
  // What the watch keeps for the session's whole life: the document without its prompt, which may
  // be large and is not needed again (memory per watched session, B5). Returned, not awaited, so
  // this frame (which holds the whole document) is not kept suspended for the watch's life.
  return watch(deps, withoutPrompt(session), readAt, msg, sandbox, client, ctx);
}

/**
 * The document the setup's own event carries, for a first delivery that is still recent: the
 * watch's store check would not have read the store yet either (`storeCheckMs`). Anything else (a
 * redelivery, a republish, an event that waited in the stream) reads the store.
 */
function startingDocument(deps: WatchDeps, msg: SessionRunning, ctx: MessageContext): WatchedSession | undefined {
  const doc = msg.session;
  if (!doc || ctx.deliveryCount !== 1 || msg.rewatch !== undefined) return undefined;
  if (doc.id !== msg.sessionId || doc.attempt !== msg.attempt) return undefined;
  if (Date.now() - msg.at >= deps.settings.storeCheckMs) return undefined;
  return doc;
}

function withoutPrompt(s: Session | WatchedSession): WatchedSession {
  if (!("prompt" in s)) return s;
  const { prompt: _prompt, ...rest } = s;
  return rest;
}

async function watch(
  deps: WatchDeps,
  session: WatchedSession,
  readAt: number,
  msg: SessionRunning,
  sandbox: Sandbox,
  client: AgentClient,
  ctx: MessageContext,
): Promise<void> {
  // A first delivery that names the spawner's last line continues after it: no other writer has
  // written since (the spawner published this after its last line was confirmed). A redelivery,
  // or an event without it, reads the stream for where the log stands.
  const writer = await SessionLogWriter.open(
    deps,
    session.id,
    ctx.deliveryCount === 1 && msg.logSeq !== undefined ? { after: msg.logSeq } : {},
  );
  deps.logger.info(
    { sessionId: session.id, sandboxId: sandbox.id, delivery: ctx.deliveryCount, resumeAfterSeq: writer.seq },
    "watching session",
  );
  const w = new Watch(deps, session, readAt, msg, sandbox, client, writer, ctx);
  // Progress pushed from inside the sandbox reaches this writer, so the log keeps one writer.
  const progress = deps.bus.serveProgress(session.id, (p) =>
    w.acting()
      ? storeProgress(writer, session, p)
      : Promise.resolve({
          ok: false as const,
          code: "unavailable" as const,
          message: "this poller no longer watches the session; retry",
        }),
  );
  try {
    await w.run();
  } finally {
    progress.stop();
  }
}

async function storeProgress(
  writer: SessionLogWriter,
  session: WatchedSession,
  p: SessionProgress,
): Promise<ProgressReply> {
  if (p.attempt !== session.attempt)
    return {
      ok: false,
      code: "conflict",
      message: `session ${session.id} is on attempt ${session.attempt}, not ${p.attempt}`,
    };
  // Keys live apart from the poller's own, so a sandbox cannot hide the fleet's lines.
  const lines = p.lines.map((l) => ({ kind: l.kind, line: l.line, ...(l.key ? { key: `cb:${l.key}` } : {}) }));
  const before = writer.seq;
  await writer.append(lines);
  return { ok: true, stored: writer.seq - before, seq: writer.seq };
}

async function fail(deps: WatchDeps, session: WatchedSession, code: string, message: string): Promise<void> {
  await endSession(deps, session.id, { status: "failed", error: { code, message } });
}

class Watch {
  private readonly stop = new AbortController();
  private finishing = false;
  private unreachableSince: number | undefined;
  private lastActivity = Date.now();
  private partsSeen = 0;
  /** When the document the watch starts from was read (or, carried by the event, written). */
  private storeCheckedAt: number;
  /** A log write failed: the next tick rebuilds the lines from the agent's messages. */
  private reconcileNeeded = false;
  private readonly log: Logger;
  private readonly lifetime: LifetimeKeeper;
  private readonly agentSessionId: string;
  private readonly lease: WatchLease;

  constructor(
    private readonly deps: WatchDeps,
    private readonly session: WatchedSession,
    readAt: number,
    msg: SessionRunning,
    private readonly sandbox: Sandbox,
    private readonly client: AgentClient,
    private readonly writer: SessionLogWriter,
    private readonly ctx: Pick<MessageContext, "signal" | "holds" | "deliveryCount">,
  ) {
    this.log = deps.logger.child({ sessionId: session.id, sandboxId: sandbox.id });
    this.lifetime = new LifetimeKeeper(deps.provider, sandbox.id, session.deadlineAt, this.log);
    this.agentSessionId = msg.agentSessionId;
    this.storeCheckedAt = readAt;
    this.lease = new WatchLease(deps.store, session, msg.rewatch ?? 0, deps.settings.leaseMs, this.log);
    // Shutdown, or the hold on the session's message lapsed: either way another poller carries on.
    ctx.signal.addEventListener("abort", () => this.stop.abort(), { once: true });
  }

  /**
   * True once this poller may no longer act on the session: its heartbeats were not confirmed in
   * time (a stalled event loop, the bus out of reach), so another poller may have it by now. Asked
   * before every action, since after a stall other callbacks can run before the release timer.
   */
  private lost(): boolean {
    if (!this.ctx.holds()) {
      if (!this.stop.signal.aborted) {
        this.log.warn("no longer sure to hold the session; stopping this watch, another poller takes it over");
        this.stop.abort();
      }
      return true;
    }
    // A lapsed lease is not the end yet: a renewal may still win it back (see `tick`).
    return !this.lease.valid();
  }

  /** May act on the session now: the message is held and the lease is current. */
  acting(): boolean {
    return this.ctx.holds() && this.lease.valid();
  }

  async run(): Promise<void> {
    // Over budget before this poller took it (a call refused between the prompt and `running`).
    const asked = endRequestOf(this.session);
    if (asked) return this.endAsRequested(asked);
    const events = this.followEvents();
    try {
      while (!this.stop.signal.aborted) {
        await this.tick();
        await sleep(this.deps.settings.statusIntervalMs, this.stop.signal);
      }
    } finally {
      this.stop.abort();
      await events;
    }
  }

  /** Real-time progress; after a reconnect, what was missed is rebuilt from the messages. */
  private async followEvents(): Promise<void> {
    for (let connection = 0; !this.stop.signal.aborted; connection++) {
      try {
        // A watch taken over from another poller also rebuilds what happened while nobody watched.
        if (connection > 0 || this.ctx.deliveryCount > 1 || this.lease.round > 0)
          await this.reconcile(await this.client.messages(this.agentSessionId));
        for await (const ev of this.client.events(this.stop.signal)) {
          if (
            ev.type !== "heartbeat" &&
            ("sessionId" in ev
              ? ev.sessionId === this.agentSessionId
              : ev.type === "part" && ev.part.sessionId === this.agentSessionId)
          ) {
            this.lastActivity = Date.now();
          }
          if (ev.type === "part" && ev.part.sessionId === this.agentSessionId) {
            // Not awaited: parts arriving while a write is in flight go out in the next one (the
            // writer batches and keeps their order). A failed write is made good from the messages.
            this.onPart(ev.part).catch((err: unknown) => {
              this.reconcileNeeded = true;
              this.log.debug(
                { err: errorMessage(err) },
                "log lines not stored yet; they are rebuilt from the messages",
              );
            });
          } else if (ev.type === "idle" && ev.sessionId === this.agentSessionId) {
            // The loop's own tick reports failures; this early one only saves waiting for it.
            void this.tick().catch((err: unknown) =>
              this.log.debug({ err: errorMessage(err) }, "early completion check failed"),
            );
          }
        }
      } catch (err) {
        if (!this.stop.signal.aborted) this.log.debug({ err: errorMessage(err) }, "event stream broke; reconnecting");
      }
      await sleep(300, this.stop.signal);
    }
  }

  private async onPart(part: AgentPart): Promise<void> {
    if (part.kind !== "tool" || this.lost()) return;
    const lines = toolLines(part, this.sandbox.workspace, (key) => this.writer.has(key));
    if (lines.length) {
      // A tool call seen ending for the first time is one span of the session's trace, timed by the agent.
      if ((part.status === "completed" || part.status === "error") && part.startedAt && part.endedAt)
        recordSpan(
          `agent.tool ${part.tool}`,
          { "agent.tool": part.tool, ...(part.title ? { "agent.tool.title": part.title.slice(0, 200) } : {}) },
          part.startedAt,
          part.endedAt,
          part.status === "error" ? (part.error ?? "failed").slice(0, 500) : undefined,
        );
      await this.writer.append(lines);
      this.deps.metrics.logLines.inc(lines.length);
    }
  }

  private async reconcile(messages: readonly AgentMessage[]): Promise<void> {
    this.reconcileNeeded = false;
    await Promise.all(messages.flatMap((m) => m.parts.map((p) => this.onPart(p))));
  }

  /** The safety net: is the session still ours, is the agent reachable, is it done? */
  private async tick(): Promise<void> {
    if (this.finishing || this.stop.signal.aborted || (!this.ctx.holds() && this.lost())) return;
    const lease = await this.lease.renewIfDue();
    if (lease === "lost") {
      this.stop.abort();
      return;
    }
    // Lines skipped while the lease had lapsed are rebuilt now it is back.
    if (lease === "regained") this.reconcileNeeded = true;
    if (this.stop.signal.aborted || this.lost()) return;
    await this.lifetime.keep();
    if (this.reconcileNeeded) {
      await this.client
        .messages(this.agentSessionId)
        .then((ms) => this.reconcile(ms))
        .catch((err: unknown) => {
          this.reconcileNeeded = true;
          this.log.debug({ err: errorMessage(err) }, "log lines not rebuilt yet");
        });
    }
    if (Date.now() - this.storeCheckedAt >= this.deps.settings.storeCheckMs) {
      let current: Session | null;
      try {
        current = await this.deps.store.get(this.session.id);
      } catch (err) {
        // The store is away: the agent goes on regardless, so keep watching and look again next tick.
        this.log.warn({ err: errorMessage(err) }, "store unavailable; still watching");
        return;
      }
      this.storeCheckedAt = Date.now();
      if (!current || isTerminal(current.status)) {
        // Ended elsewhere (cancel, deadline): make sure the sandbox goes with it, and its event out.
        if (current) await settleEnded(this.deps, current);
        await this.deps.provider.kill(this.sandbox.id).catch(() => undefined);
        this.stop.abort();
        return;
      }
      if (this.lease.takenFrom(current)) {
        this.stop.abort();
        return;
      }
      const asked = endRequestOf(current);
      if (asked) return this.endAsRequested(asked);
    }
    let busy: boolean;
    try {
      const status = await this.client.status();
      busy = status[this.agentSessionId] !== undefined;
      this.unreachableSince = undefined;
    } catch (err) {
      await this.onUnreachable(err);
      return;
    }
    if (busy) {
      if (Date.now() - this.lastActivity > this.deps.settings.quietMs) await this.onQuiet();
      return;
    }
    // Absent from the status map means idle, or not started yet: only finished messages decide.
    const messages = await this.client.messages(this.agentSessionId).catch(() => undefined);
    if (messages && agentFinished(messages)) await this.finish(messages);
  }

  private async onUnreachable(err: unknown): Promise<void> {
    this.unreachableSince ??= Date.now();
    if (!(await this.sandbox.isAlive().catch(() => false))) {
      const cause = this.lifetime.lapseCause(this.session.startedAt);
      this.log.warn({ cause: cause || "unknown" }, "the sandbox ended under the agent");
      const message = `the sandbox ended under the agent${cause}`;
      await this.end(async () => {
        // Said in the session's own log too, for whoever follows it; the end does not wait on it.
        await this.writer
          .append([{ kind: "error", key: "end:sandbox_lost", line: message }])
          .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, "could not log the sandbox's end"));
        if (this.lost()) return;
        await fail(this.deps, this.session, "sandbox_lost", message);
      });
    } else if (Date.now() - this.unreachableSince > this.deps.settings.unreachableMs) {
      await this.end(() =>
        fail(
          this.deps,
          this.session,
          "agent_unreachable",
          `agent server unreachable for ${Math.round(this.deps.settings.unreachableMs / 1000)} s: ${errorMessage(err)}`,
        ),
      );
    }
  }

  /**
   * Busy and silent past the quiet period. Agent servers are known to hang and to ignore abort, so
   * each step gets a bound: abort the agent session, then kill the agent process, then the session
   * fails `stalled` and its sandbox is killed with it.
   */
  private async onQuiet(): Promise<void> {
    // Progress may have come while the event stream was cut: the messages tell.
    const parts = await this.client
      .messages(this.agentSessionId)
      .then((ms) => ms.reduce((n, m) => n + m.parts.length, 0))
      .catch(() => this.partsSeen);
    if (parts !== this.partsSeen) {
      this.partsSeen = parts;
      this.lastActivity = Date.now();
      return;
    }
    const quiet = Math.round((Date.now() - this.lastActivity) / 1000);
    const tried: string[] = [];
    const idleWithin = async (ms: number): Promise<boolean> => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const status = await this.client.status().catch(() => undefined);
        if (status && status[this.agentSessionId] === undefined) return true;
        await sleep(250, this.stop.signal);
      }
      return false;
    };
    await this.end(async () => {
      this.log.warn({ quietSeconds: quiet }, "agent stuck; escalating");
      await this.client.abort(this.agentSessionId).catch(() => undefined);
      const aborted = await idleWithin(this.deps.settings.escalationStepMs);
      tried.push(`abort (${aborted ? "went idle" : "no effect"})`);
      const pid = (await this.deps.store.get(this.session.id))?.sandbox?.agentPid;
      if (!aborted && pid) {
        const r = await this.sandbox
          .run({ command: "kill", args: ["-KILL", String(pid)] }, { timeoutMs: this.deps.settings.escalationStepMs })
          .catch(() => undefined);
        tried.push(`kill agent process ${pid} (${r?.exitCode === 0 ? "killed" : "not reachable"})`);
      }
      tried.push("sandbox killed");
      if (this.lost()) return;
      await fail(
        this.deps,
        this.session,
        "stalled",
        `agent busy with no progress for ${quiet} s; tried: ${tried.join(", ")}`,
      );
    });
  }

  /**
   * The model gateway refused a call over budget and asked for the end: the reason goes to the log,
   * then the session fails with the gateway's code (its sandbox killed by endSession).
   */
  private endAsRequested(asked: EndRequest): Promise<void> {
    return this.end(async () => {
      this.log.info({ code: asked.code }, asked.message);
      await this.writer.append([{ kind: "error", key: `end:${asked.code}`, line: asked.message }]);
      if (this.lost()) return;
      await fail(this.deps, this.session, asked.code, asked.message);
    });
  }

  private async end(action: () => Promise<void>): Promise<void> {
    if (this.finishing || this.lost()) return;
    this.finishing = true;
    try {
      await action();
    } finally {
      this.stop.abort();
    }
  }

  private async finish(messages: AgentMessage[]): Promise<void> {
    // A call the gateway refused over budget ends the agent's run with the refusal as its error:
    // the gateway's reason decides, not the agent's. Read only for a run that failed, so a session
    // that completes costs the store nothing more.
    const failed = messages.filter((m) => m.role === "assistant").at(-1)?.error;
    const asked = failed
      ? await this.deps.store.get(this.session.id).then(
          (s) => (s ? endRequestOf(s) : undefined),
          () => undefined,
        )
      : undefined;
    if (asked) return this.endAsRequested(asked);
    return this.end(async () => {
      const { store, metrics } = this.deps;
      // Straight to the terminal write: a "collecting" phase would cost a store write per session.
      const messageId = this.session.agentMessageId;
      const [todos, diffs] = await Promise.all([
        this.client.todos(this.agentSessionId).catch(() => []),
        messageId ? this.client.diff(this.agentSessionId, messageId).catch(() => []) : Promise.resolve([]),
      ]);
      await this.reconcile(messages);
      if (this.lost()) return;
      const output = extractOutput(messages, todos, diffs);
      const usage = extractUsage(messages);
      const executionMs = Date.now() - (this.session.startedAt ?? Date.now());
      const sandboxSeconds = (Date.now() - this.session.createdAt - (this.session.metrics.setup.queuedMs ?? 0)) / 1000;
      await this.writer.append([
        {
          kind: "system",
          key: "end:summary",
          line: `Finished in ${(executionMs / 1000).toFixed(1)} s: ${output.toolCalls.length} tool call(s), ${messages.length} message(s)`,
        },
      ]);
      const failure = messages.filter((m) => m.role === "assistant").at(-1)?.error;
      const metricsSet = {
        metrics: {
          ...this.session.metrics,
          executionMs,
          counts: { messages: messages.length, toolCalls: output.toolCalls.length, logLines: this.writer.seq },
          usage: { ...usage, sandboxSeconds },
        },
      };
      if (this.session.cardId && !failure) await saveCardFiles(store, this.session.cardId, this.session.id, diffs);
      const ended = failure
        ? await endSession(
            this.deps,
            this.session.id,
            {
              status: "failed",
              error: { code: "agent", message: `${failure.name}: ${failure.message}`.slice(0, 2_000) },
            },
            { ...metricsSet, output },
          )
        : await endSession(this.deps, this.session.id, { status: "completed", output }, metricsSet);
      if (ended) {
        const project = this.session.projectId;
        metrics.tokens.inc({ project, direction: "in" }, usage.tokensIn);
        metrics.tokens.inc({ project, direction: "out" }, usage.tokensOut);
        metrics.cost.inc({ project }, usage.cost);
        metrics.sandboxSeconds.inc({ project }, sandboxSeconds);
        metrics.executionSeconds.observe(executionMs / 1000);
      }
    });
  }
}

/** The gateway's request to end this attempt of the session, if it made one. */
function endRequestOf(s: Pick<Session, "endRequested" | "attempt">): EndRequest | undefined {
  return s.endRequested && s.endRequested.attempt === s.attempt ? s.endRequested : undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * The poller stage: consumes session.running and holds each message, with confirmed heartbeats,
 * for as long as it watches the session; if this instance dies, the message goes to another one
 * after the (short) ack deadline and that one re-attaches. A watch whose heartbeats were not
 * confirmed in time stops acting before another instance can be given its session.
 */
export function createPoller(deps: WatchDeps, options: { maxInFlight: number; heartbeatMs: number }): Stage {
  return createStage(deps.bus, "poller", (msg, ctx) => handleRunning(deps, msg, ctx), { ...options, exclusive: true });
}
