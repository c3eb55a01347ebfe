/**
 * The BullMQ peer's watch stage (benchmark peer): a `peer-running` job -> follow the simulated
 * agent's event stream until idle, storing each tool part as log lines, then collect the result,
 * mark the document completed and kill the sandbox. Completion comes from the stream's idle event,
 * the fleet poller's primary path; BullMQ renews the job's lock meanwhile, as the fleet's
 * `working()` heartbeats hold its message.
 */
import type { Job } from "bullmq";
import type { Collection } from "mongodb";
import { agentFinished, agentPassword, extractOutput, toolLines, type AgentPart, type ToolLine } from "@fleet/shared";
import { RunningJob, type PeerLogDoc, type PeerSessionDoc } from "./queues.js";
import { parseJob, type PeerDeps } from "./spawn.js";

export async function handleRunning(deps: PeerDeps, job: Job): Promise<void> {
  const msg = parseJob(RunningJob, job);
  const { sessions, provider } = deps;
  const doc = await sessions.findOne({ _id: msg.sessionId }, { projection: { status: 1, attempt: 1 } });
  // A job of an earlier attempt, or for a session that ended: nothing to watch.
  if (!doc || doc.attempt !== msg.attempt) return;
  if (doc.status !== "running") {
    await provider.kill(msg.sandboxId);
    return;
  }
  const sandbox = await provider.connect(msg.sandboxId);
  if (!sandbox)
    return end(deps, msg, {
      status: "failed",
      error: { code: "sandbox_lost", message: `sandbox ${msg.sandboxId} is gone` },
    });
  const client = deps.runtime.connect({
    baseUrl: sandbox.url(sandbox.agentPort),
    password: agentPassword(deps.agentSecret, msg.sessionId, msg.attempt),
  });
  const log = await LogWriter.open(deps.logs, msg.sessionId);
  const onPart = async (part: AgentPart): Promise<void> => {
    if (part.kind === "tool" && part.sessionId === msg.agentSessionId)
      await log.append(toolLines(part, sandbox.workspace));
  };

  const stop = new AbortController();
  let idle = false;
  try {
    for await (const ev of client.events(stop.signal)) {
      if (ev.type === "part") await onPart(ev.part);
      else if (ev.type === "idle" && ev.sessionId === msg.agentSessionId) {
        idle = true;
        break;
      }
    }
  } finally {
    stop.abort();
  }
  if (!idle) throw new Error(`event stream of ${msg.sessionId} ended before the agent went idle`);

  const messages = await client.messages(msg.agentSessionId);
  if (!agentFinished(messages)) throw new Error(`agent of ${msg.sessionId} idle without a finished message`);
  // Parts the stream may have missed are in the messages; the keys keep them from doubling.
  for (const m of messages) for (const p of m.parts) await onPart(p);
  const failure = messages.filter((m) => m.role === "assistant").at(-1)?.error;
  const output = extractOutput(messages, [], []);
  await end(
    deps,
    msg,
    failure
      ? {
          status: "failed",
          output,
          error: { code: "agent", message: `${failure.name}: ${failure.message}`.slice(0, 2_000) },
        }
      : { status: "completed", output },
  );
}

/**
 * The document ends (by its id alone, as in spawn.ts: the job lock makes this worker its only
 * writer now), then the sandbox goes, on every terminal path.
 */
async function end(
  deps: PeerDeps,
  msg: RunningJob,
  set: Pick<PeerSessionDoc, "output" | "error"> & { status: "completed" | "failed" },
): Promise<void> {
  await deps.sessions.updateOne({ _id: msg.sessionId }, { $set: { ...set, completedAt: Date.now() } });
  await deps.provider.kill(msg.sandboxId);
}

/**
 * One session's log lines, numbered 1, 2, 3… and keyed by what they report, each batch one
 * unordered insertMany. Opened after a crash it carries on from the stored lines, skipping keys
 * already there. The _id is `<sessionId>:<seq, zero-padded>`, so "has this session any line yet"
 * is one primary-key lookup, like the fleet's log writer does.
 */
class LogWriter {
  private constructor(
    private readonly logs: Collection<PeerLogDoc>,
    private readonly sessionId: string,
    private seq: number,
    private readonly keys: Set<string>,
  ) {}

  static async open(logs: Collection<PeerLogDoc>, sessionId: string): Promise<LogWriter> {
    if (!(await logs.findOne({ _id: logId(sessionId, 1) }, { projection: { _id: 1 } })))
      return new LogWriter(logs, sessionId, 0, new Set());
    const stored = await logs
      .find({ sessionId }, { projection: { seq: 1, key: 1 } })
      .sort({ seq: 1 })
      .toArray();
    return new LogWriter(logs, sessionId, stored.at(-1)?.seq ?? 0, new Set(stored.map((l) => l.key)));
  }

  async append(lines: readonly ToolLine[]): Promise<void> {
    const fresh = lines.filter((l) => !this.keys.has(l.key));
    if (fresh.length === 0) return;
    const at = Date.now();
    const docs = fresh.map((l, i): PeerLogDoc => {
      const seq = this.seq + i + 1;
      return {
        _id: logId(this.sessionId, seq),
        sessionId: this.sessionId,
        seq,
        at,
        kind: l.kind,
        line: l.line,
        key: l.key,
      };
    });
    await this.logs.insertMany(docs, { ordered: false });
    this.seq += docs.length;
    for (const l of fresh) this.keys.add(l.key);
  }
}

function logId(sessionId: string, seq: number): string {
  return `${sessionId}:${String(seq).padStart(10, "0")}`;
}
