import { type ChildProcess, spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { ConnectError, connectTimeoutMs, parseMessage, sendUnary, ServerStream } from "../connect.js";
import type { EnvdContext } from "./context.js";

/**
 * envd's process service (process.Process): every process of the sandbox runs in envd's own
 * namespaces, so they share one loopback, one /tmp and one pid space, as in an E2B sandbox. A
 * client that stops streaming (a background command) leaves its process running.
 */

const Selector = z.union([z.object({ pid: z.number().int().positive() }), z.object({ tag: z.string().min(1) })]);
const ProcessConfig = z.object({
  cmd: z.string().min(1),
  args: z.array(z.string()).default([]),
  envs: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
});
const StartRequest = z.object({
  process: ProcessConfig,
  pty: z.unknown().optional(),
  tag: z.string().optional(),
  stdin: z.boolean().optional(),
});
const ConnectRequest = z.object({ process: Selector });
const SendSignalRequest = z.object({
  process: Selector,
  signal: z.union([z.enum(["SIGNAL_UNSPECIFIED", "SIGNAL_SIGTERM", "SIGNAL_SIGKILL"]), z.literal(15), z.literal(9)]),
});
const SendInputRequest = z.object({
  process: Selector,
  input: z.union([z.object({ stdin: z.base64() }), z.object({ pty: z.base64() })]),
});
const CloseStdinRequest = z.object({ process: Selector });
const Empty = z.object({}).passthrough();

interface Proc {
  pid: number;
  tag: string | undefined;
  config: z.output<typeof ProcessConfig>;
  child: ChildProcess;
  streams: Set<ServerStream>;
}

const b64 = (chunk: Buffer) => chunk.toString("base64");

export class ProcessService {
  private readonly procs = new Map<number, Proc>();

  constructor(private readonly ctx: EnvdContext) {}

  private find(selector: z.output<typeof Selector>): Proc {
    const proc =
      "pid" in selector ? this.procs.get(selector.pid) : [...this.procs.values()].find((p) => p.tag === selector.tag);
    if (!proc) throw new ConnectError("not_found", `process ${JSON.stringify(selector)} not found`);
    return proc;
  }

  /** Streams a process's events to this response until it ends or the client goes away. */
  private follow(proc: Proc, req: IncomingMessage, res: ServerResponse): void {
    const stream = new ServerStream(res);
    stream.send({ event: { start: { pid: proc.pid } } });
    proc.streams.add(stream);
    const pingSeconds = Number(req.headers["keepalive-ping-interval"]);
    const ping =
      Number.isFinite(pingSeconds) && pingSeconds > 0
        ? setInterval(() => stream.send({ event: { keepalive: {} } }), pingSeconds * 1000)
        : undefined;
    const limit = connectTimeoutMs(req);
    const deadline = limit
      ? setTimeout(() => stream.end(new ConnectError("deadline_exceeded", "deadline exceeded")), limit)
      : undefined;
    const stop = () => {
      proc.streams.delete(stream);
      if (ping) clearInterval(ping);
      if (deadline) clearTimeout(deadline);
    };
    res.once("close", stop);
  }

  start(raw: unknown, req: IncomingMessage, res: ServerResponse): void {
    const { process: config, tag, stdin } = parseMessage(StartRequest, raw);
    const cwd = this.ctx.resolve(config.cwd ?? this.ctx.home);
    const child = spawn(config.cmd, config.args, {
      cwd,
      env: this.ctx.processEnv(config.envs, cwd),
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.once("error", () => undefined);
    if (!child.pid) {
      // spawn failed at once (no such program or folder): envd reports it as a failed start.
      throw new ConnectError("invalid_argument", `cannot start ${config.cmd} in ${cwd}`);
    }
    if (!stdin) child.stdin?.end();
    child.stdin?.on("error", () => undefined);
    const proc: Proc = { pid: child.pid, tag, config, child, streams: new Set() };
    this.procs.set(proc.pid, proc);
    const broadcast = (event: unknown) => {
      for (const s of proc.streams) s.send({ event });
    };
    child.stdout?.on("data", (c: Buffer) => broadcast({ data: { stdout: b64(c) } }));
    child.stderr?.on("data", (c: Buffer) => broadcast({ data: { stderr: b64(c) } }));
    child.once("close", (code, signal) => {
      this.procs.delete(proc.pid);
      const exitCode = code ?? -1;
      broadcast({
        end: {
          exitCode,
          exited: code !== null,
          status: signal ? `signal: ${signal === "SIGKILL" ? "killed" : signal}` : `exit status ${exitCode}`,
        },
      });
      for (const s of proc.streams) s.end();
      proc.streams.clear();
    });
    this.follow(proc, req, res);
  }

  connect(raw: unknown, req: IncomingMessage, res: ServerResponse): void {
    this.follow(this.find(parseMessage(ConnectRequest, raw).process), req, res);
  }

  list(raw: unknown, res: ServerResponse): void {
    parseMessage(Empty, raw);
    sendUnary(res, {
      processes: [...this.procs.values()].map((p) => ({
        config: p.config,
        pid: p.pid,
        ...(p.tag ? { tag: p.tag } : {}),
      })),
    });
  }

  sendSignal(raw: unknown, res: ServerResponse): void {
    const { process: selector, signal } = parseMessage(SendSignalRequest, raw);
    const proc = this.find(selector);
    const sig = signal === "SIGNAL_SIGKILL" || signal === 9 ? "SIGKILL" : "SIGTERM";
    try {
      // The process's group, as it was started detached: what it started goes too.
      process.kill(-proc.pid, sig);
    } catch {
      proc.child.kill(sig);
    }
    sendUnary(res, {});
  }

  sendInput(raw: unknown, res: ServerResponse): void {
    const { process: selector, input } = parseMessage(SendInputRequest, raw);
    const proc = this.find(selector);
    const data = Buffer.from("stdin" in input ? input.stdin : input.pty, "base64");
    if (!proc.child.stdin || proc.child.stdin.writableEnded)
      throw new ConnectError("failed_precondition", "stdin of the process is closed");
    proc.child.stdin.write(data);
    sendUnary(res, {});
  }

  closeStdin(raw: unknown, res: ServerResponse): void {
    const proc = this.find(parseMessage(CloseStdinRequest, raw).process);
    proc.child.stdin?.end();
    sendUnary(res, {});
  }

  /** Ends every process (envd shutting down). */
  killAll(): void {
    for (const p of this.procs.values()) {
      try {
        process.kill(-p.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
}
