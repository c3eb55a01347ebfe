/**
 * A Redis server for the BullMQ peer (benchmark peer, not part of the fleet): Debian's
 * `redis-server`, on a free loopback port, dying with its parent. Durability is set to match the
 * fleet's JetStream file storage, which writes every message to its file without an fsync each:
 * append-only file with one fsync a second, no RDB snapshots.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { FleetError, errorMessage } from "@fleet/shared";
import { freePort, logTail, startProcess, type ManagedProcess } from "@fleet/devtools/infra";

export interface StartedRedis {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 20_000;

/** The `redis-server` binary; as root with apt, installs Debian's package when it is missing. */
export function ensureRedisServer(): string {
  const has = (): boolean => spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
  if (has()) return "redis-server";
  const canApt = process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (!canApt) {
    throw new FleetError(
      "infra",
      "redis-server not found: install Debian's package with `sudo apt-get install -y redis-server` (the BullMQ peer needs it)",
    );
  }
  const quiet = { stdio: "ignore" as const, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } };
  if (spawnSync("apt-get", ["install", "-y", "-q", "redis-server"], quiet).status !== 0) {
    spawnSync("apt-get", ["update", "-q"], quiet);
    spawnSync("apt-get", ["install", "-y", "-q", "redis-server"], quiet);
  }
  if (!has())
    throw new FleetError(
      "infra",
      "could not install redis-server with apt-get (Debian package redis-server); install it and try again",
    );
  return "redis-server";
}

export async function startRedis(dataDir: string): Promise<StartedRedis> {
  const binary = ensureRedisServer();
  const dir = join(dataDir, "redis");
  mkdirSync(dir, { recursive: true });
  for (let tries = 1; ; tries++) {
    const port = await freePort();
    const proc = startProcess({
      name: "redis-server",
      command: binary,
      // --save "" turns RDB snapshots off; --logfile "" logs to stdout, i.e. the log file below.
      args: [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--logfile",
        "",
      ],
      logFile: join(dataDir, "redis-server.log"),
    });
    try {
      await waitForPong(proc, port);
      return { url: `redis://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.stop() };
    } catch (err) {
      await proc.stop();
      // The free port may have been taken between our probe and the server's bind: try another.
      if (tries >= 3) throw err;
    }
  }
}

async function waitForPong(proc: ManagedProcess, port: number): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  let last = "";
  while (Date.now() < until) {
    if (!proc.running)
      throw new FleetError(
        "infra",
        `redis-server exited during start-up; its log (${proc.logFile}) ends with:\n${logTail(proc.logFile)}`,
      );
    try {
      await ping(port);
      return;
    } catch (err) {
      last = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new FleetError(
    "infra",
    `redis-server did not answer PING in ${READY_TIMEOUT_MS} ms (${last}); see ${proc.logFile}`,
  );
}

/** One inline PING; resolves on +PONG (a server still loading its AOF answers -LOADING). */
function ping(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(1_000, () => done(new Error("no reply to PING")));
    socket.once("error", done);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (!reply.includes("\r\n")) return;
      if (reply.startsWith("+PONG")) done();
      else done(new Error(reply.trim()));
    });
  });
}
