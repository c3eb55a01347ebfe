import { z } from "zod";
import type { CommandSpec, SandboxFile } from "../sandbox/port.js";

/**
 * An agent server reached over HTTP. Adapter: OpenCode 1.x (`agent/opencode`). Everything the
 * server sends is checked with these schemas before the fleet uses it.
 */

export const AgentSessionStatus = z.enum(["busy", "idle", "retry"]);
export type AgentSessionStatus = z.infer<typeof AgentSessionStatus>;

const partBase = { id: z.string(), messageId: z.string(), sessionId: z.string() };

export const AgentToolPart = z.object({
  ...partBase,
  kind: z.literal("tool"),
  tool: z.string(),
  callId: z.string().optional(),
  status: z.enum(["pending", "running", "completed", "error"]),
  input: z.unknown().optional(),
  output: z.string().optional(),
  error: z.string().optional(),
  title: z.string().optional(),
  startedAt: z.number().optional(),
  endedAt: z.number().optional(),
});

export const AgentPart = z.discriminatedUnion("kind", [
  AgentToolPart,
  z.object({ ...partBase, kind: z.literal("text"), text: z.string() }),
  z.object({ ...partBase, kind: z.literal("reasoning"), text: z.string() }),
  z.object({
    ...partBase,
    kind: z.literal("step-finish"),
    cost: z.number(),
    tokens: z.object({
      input: z.number(),
      output: z.number(),
      reasoning: z.number(),
      cacheRead: z.number(),
      cacheWrite: z.number(),
    }),
  }),
  z.object({ ...partBase, kind: z.literal("other"), type: z.string() }),
]);
export type AgentPart = z.infer<typeof AgentPart>;
export type AgentToolPart = z.infer<typeof AgentToolPart>;

export const AgentTodo = z.object({ content: z.string(), status: z.string(), priority: z.string().optional() });
export type AgentTodo = z.infer<typeof AgentTodo>;

export const AgentFileDiff = z.object({
  file: z.string(),
  before: z.string().optional(),
  after: z.string().optional(),
  additions: z.number().optional(),
  deletions: z.number().optional(),
});
export type AgentFileDiff = z.infer<typeof AgentFileDiff>;

export const AgentMessage = z.object({
  id: z.string(),
  role: z.enum(["user", "assistant"]),
  finish: z.string().optional(),
  createdAt: z.number().optional(),
  completedAt: z.number().optional(),
  error: z.object({ name: z.string(), message: z.string() }).optional(),
  parts: z.array(AgentPart),
});
export type AgentMessage = z.infer<typeof AgentMessage>;

export type AgentEvent =
  | { type: "status"; sessionId: string; status: AgentSessionStatus }
  | { type: "idle"; sessionId: string }
  | { type: "error"; sessionId?: string; name: string; message: string }
  | { type: "part"; part: AgentPart }
  | { type: "todos"; sessionId: string; todos: AgentTodo[] }
  | { type: "heartbeat" };

export interface AgentPrompt {
  text: string;
  system?: string;
  /** Model id within the configured provider; fallbacks are tried in order when it fails. */
  model: string;
}

export interface AgentEndpoint {
  baseUrl: string;
  password: string;
}

export interface AgentClient {
  /** True once the server answers its health route (one bounded request). */
  health(timeoutMs: number): Promise<boolean>;
  createSession(title: string): Promise<{ id: string }>;
  /** Sends the prompt without waiting for the answer; returns the id of the user message. */
  prompt(sessionId: string, prompt: AgentPrompt): Promise<{ messageId: string }>;
  /** Busy / retry sessions; a session absent from the map is idle (or unknown). */
  status(): Promise<Record<string, AgentSessionStatus>>;
  /** The server's event stream, normalised; ends when `signal` aborts or the stream breaks. */
  events(signal: AbortSignal): AsyncIterable<AgentEvent>;
  messages(sessionId: string): Promise<AgentMessage[]>;
  todos(sessionId: string): Promise<AgentTodo[]>;
  /** Files the session changed since the given user message. */
  diff(sessionId: string, messageId: string): Promise<AgentFileDiff[]>;
  abort(sessionId: string): Promise<void>;
}

/** What the agent server needs to know about the model it talks to. */
export interface ModelSettings {
  /** OpenAI-compatible base URL. */
  baseUrl: string;
  apiKey: string;
  /** Primary first, then fallbacks. */
  models: string[];
  maxTokens?: number;
}

export interface AgentLaunchOptions {
  port: number;
  password: string;
  /** Absolute workspace path inside the sandbox. */
  workspace: string;
  model: ModelSettings;
}

/** One kind of agent server: how to start it in a sandbox and how to talk to it. */
export interface AgentRuntime {
  readonly name: string;
  launchCommand(options: AgentLaunchOptions): CommandSpec;
  /** Files to place under the sandbox home before the server starts (paths relative to the home). */
  homeFiles(): SandboxFile[];
  connect(endpoint: AgentEndpoint): AgentClient;
}
