import { FleetError } from "@fleet/shared/errors";
import type {
  AgentClient,
  AgentEndpoint,
  AgentEvent,
  AgentFileDiff,
  AgentLaunchOptions,
  AgentMessage,
  AgentRuntime,
  AgentSessionStatus,
  AgentTodo,
} from "@fleet/shared/agent";
import type { CommandSpec, SandboxFile } from "@fleet/shared/sandbox";
import { sandboxIdOfUrl } from "./sandbox.js";
import {
  ABORTED_ERROR,
  agentSessionIdFor,
  emittedCount,
  eventAt,
  isIdle,
  scriptedMessages,
  toolPart,
  userMessageIdFor,
  wasAborted,
} from "./script.js";
import { appendMark, liveness, livePath, readSimulatedState, simulatedIdleAt, type SimulatedState } from "./state.js";

/** How often an event stream opened before the prompt looks for it. */
const PROMPT_POLL_MS = 50;

export interface SimulatedRuntimeConfig {
  /** The simulated sandboxes' state directory (FLEET_SIM_DIR), the same as the provider's. */
  dir: string;
  /** False: the event stream stays silent (as if cut), so only the poller's status checks see the end. */
  eventStream?: boolean;
}

/**
 * A SIMULATED agent runtime, for benchmarks only: nothing is launched and no model is called. Its
 * clients answer from the sandbox's journal (see SimulatedSandboxProvider) with a scripted run, so
 * the spawner and poller do all their own work at a tiny cost per session. Correctness tests and
 * real runs use OpenCode.
 */
export function simulatedRuntime(config: SimulatedRuntimeConfig): AgentRuntime {
  return {
    name: "simulated",
    launchCommand(options: AgentLaunchOptions): CommandSpec {
      // The simulated sandbox never runs it; it only has to be a valid, harmless command.
      return { command: "true", args: ["simulated-agent", "--port", String(options.port)] };
    },
    homeFiles(): SandboxFile[] {
      return [];
    },
    connect(endpoint: AgentEndpoint): AgentClient {
      return new SimulatedAgentClient(endpoint, config.dir, config.eventStream ?? true);
    },
  };
}

/**
 * The scripted agent of one simulated sandbox. Its one agent session has an id derived from the
 * sandbox id. The journal is read until the prompt time is known and then kept: an abort sent
 * through another client is not seen by this one (the poller is the only caller of abort).
 */
export class SimulatedAgentClient implements AgentClient {
  readonly sandboxId: string;
  readonly agentSessionId: string;
  private state: SimulatedState | undefined;
  private readonly wakers = new Set<() => void>();

  constructor(
    endpoint: AgentEndpoint,
    private readonly dir: string,
    private readonly eventStream = true,
  ) {
    const id = sandboxIdOfUrl(endpoint.baseUrl);
    if (!id) throw new FleetError("agent", `not a simulated agent address: ${endpoint.baseUrl}`, { retryable: false });
    this.sandboxId = id;
    this.agentSessionId = agentSessionIdFor(id);
  }

  async health(): Promise<boolean> {
    return true;
  }

  async createSession(): Promise<{ id: string }> {
    return { id: this.agentSessionId };
  }

  /** Records the prompt time in the journal: the scripted run starts from it. */
  async prompt(sessionId: string): Promise<{ messageId: string }> {
    this.checkSession(sessionId);
    const at = Date.now();
    if (!(await appendMark(livePath(this.dir, this.sandboxId), "prompted", at))) throw this.gone();
    if (this.state && this.state.promptedAt === undefined) this.state.promptedAt = at;
    return { messageId: userMessageIdFor(this.sandboxId) };
  }

  /** Busy until the script ends; a killed sandbox's agent is unreachable, as a real one would be. */
  async status(): Promise<Record<string, AgentSessionStatus>> {
    const state = await this.current();
    if (!state.alive || !(await this.stillAlive())) throw this.gone();
    return isIdle(state, Date.now()) ? {} : { [this.agentSessionId]: "busy" };
  }

  async *events(signal: AbortSignal): AsyncIterable<AgentEvent> {
    if (!this.eventStream) {
      while (await this.pause(Number.POSITIVE_INFINITY, signal));
      return;
    }
    let state = await this.current();
    while (state.promptedAt === undefined) {
      if (!(await this.pause(PROMPT_POLL_MS, signal))) return;
      state = await this.current();
    }
    const sessionId = this.agentSessionId;
    if (!isIdle(state, Date.now())) yield { type: "status", sessionId, status: "busy" };
    for (let sent = 0; ; ) {
      const now = Date.now();
      const due = emittedCount(state, now);
      while (sent < due) yield { type: "part", part: toolPart(state, ++sent) };
      if (isIdle(state, now)) break;
      const next = Math.min(eventAt(state, sent + 1) ?? now, simulatedIdleAt(state) ?? now);
      if (!(await this.pause(next - now, signal))) return;
    }
    if (wasAborted(state)) yield { type: "error", sessionId, ...ABORTED_ERROR };
    yield { type: "status", sessionId, status: "idle" };
    yield { type: "idle", sessionId };
    // Like a server's stream: open (and silent) until the caller lets go.
    while (await this.pause(Number.POSITIVE_INFINITY, signal));
  }

  async messages(sessionId: string): Promise<AgentMessage[]> {
    this.checkSession(sessionId);
    return scriptedMessages(await this.current(), Date.now());
  }

  async todos(sessionId: string): Promise<AgentTodo[]> {
    this.checkSession(sessionId);
    return [];
  }

  async diff(sessionId: string): Promise<AgentFileDiff[]> {
    this.checkSession(sessionId);
    return [];
  }

  /** Ends the scripted run at once; recorded in the journal, so simulatedIdleAt() reflects it. */
  async abort(sessionId: string): Promise<void> {
    this.checkSession(sessionId);
    const at = Date.now();
    if (!(await appendMark(livePath(this.dir, this.sandboxId), "aborted", at))) throw this.gone();
    const state = await this.current();
    if (state.promptedAt !== undefined && state.abortedAt === undefined && at >= state.promptedAt) state.abortedAt = at;
    for (const wake of [...this.wakers]) wake();
  }

  /** The journal, read until the prompt time is known and kept from then on. */
  private async current(): Promise<SimulatedState> {
    if (this.state?.promptedAt !== undefined) return this.state;
    const read = await readSimulatedState(this.dir, this.sandboxId);
    if (!read) throw this.gone();
    this.state = read;
    return read;
  }

  /** A killed sandbox's journal has left live/; one past its timeout ends now (so its agent is gone). */
  private async stillAlive(): Promise<boolean> {
    return (await liveness(this.dir, this.sandboxId).catch(() => "gone")) === "alive";
  }

  private checkSession(sessionId: string): void {
    if (sessionId !== this.agentSessionId) {
      throw new FleetError("not_found", `simulated agent of ${this.sandboxId} has no session ${sessionId}`, {
        retryable: false,
      });
    }
  }

  private gone(): FleetError {
    return new FleetError("agent", `simulated sandbox ${this.sandboxId} is gone`, { retryable: true });
  }

  /** Resolves true after `ms` or when abort() wakes the run, false once `signal` aborts. */
  private pause(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        if (timer) clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.wakers.delete(wake);
        resolve(value);
      };
      const onAbort = (): void => done(false);
      const wake = (): void => done(true);
      const timer = Number.isFinite(ms) ? setTimeout(wake, Math.max(0, ms)) : undefined;
      signal.addEventListener("abort", onAbort, { once: true });
      this.wakers.add(wake);
    });
  }
}
