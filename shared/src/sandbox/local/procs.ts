import { readFileSync, readdirSync } from "node:fs";

/**
 * Finding a sandbox's processes from any process on the host, through /proc.
 *
 * Every process a sandbox starts carries `FLEET_SANDBOX_ID=<id>` in its environment. That marker,
 * not a recorded pid alone, decides what is signalled: a recorded group id can be reused by an
 * unrelated process long after the sandbox died, and a process can leave its group with setsid.
 * Zombies count as gone: this host's init does not reap orphans, and signal 0 succeeds on them.
 */

export const MARKER_VAR = "FLEET_SANDBOX_ID";

interface ProcInfo {
  pid: number;
  pgid: number;
  state: string;
}

function readStat(pid: number): ProcInfo | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may itself contain spaces and parentheses.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const state = rest[0] ?? "?";
    const pgid = Number(rest[2]);
    return Number.isInteger(pgid) ? { pid, pgid, state } : null;
  } catch {
    return null;
  }
}

const gone = (p: ProcInfo | null): boolean => p === null || p.state === "Z" || p.state === "X";

export function isProcessRunning(pid: number): boolean {
  return !gone(readStat(pid));
}

function liveProcs(): ProcInfo[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const info = readStat(Number(name));
    if (info && !gone(info)) out.push(info);
  }
  return out;
}

function carriesMarker(pid: number, id: string): boolean {
  try {
    const env = readFileSync(`/proc/${pid}/environ`);
    const needle = Buffer.from(`${MARKER_VAR}=${id}\0`);
    for (let at = env.indexOf(needle); at !== -1; at = env.indexOf(needle, at + 1)) {
      if (at === 0 || env[at - 1] === 0) return true;
    }
    return false;
  } catch {
    return false;
  }
}

/**
 * Live processes of a sandbox: every marked process, plus the members of recorded groups that
 * still hold a marked member (so `env -i` children in the agent's group are caught too).
 */
function sandboxProcs(id: string, pgids: ReadonlySet<number>): ProcInfo[] {
  const procs = liveProcs().filter((p) => p.pid !== process.pid);
  const marked = new Set(procs.filter((p) => carriesMarker(p.pid, id)).map((p) => p.pid));
  const markedGroups = new Set(procs.filter((p) => marked.has(p.pid)).map((p) => p.pgid));
  return procs.filter((p) => marked.has(p.pid) || (pgids.has(p.pgid) && markedGroups.has(p.pgid)));
}

/** True when one of the recorded groups still has a live process that belongs to the sandbox. */
export function anyGroupAlive(id: string, pgids: readonly number[]): boolean {
  const wanted = new Set(pgids);
  const members = liveProcs().filter((p) => wanted.has(p.pgid));
  return members.some((p) => carriesMarker(p.pid, id));
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // ESRCH: already gone; EPERM: not ours to end.
  }
}

function signalAll(procs: readonly ProcInfo[], sig: NodeJS.Signals): void {
  for (const pgid of new Set(procs.map((p) => p.pgid))) {
    if (pgid > 1) signal(-pgid, sig);
  }
  for (const p of procs) signal(p.pid, sig);
}

async function waitGone(pids: readonly number[], ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (pids.every((pid) => !isProcessRunning(pid))) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** SIGTERM, a grace period, then SIGKILL for whatever remains (including processes forked meanwhile). */
export async function terminateSandbox(
  id: string,
  pgids: readonly number[],
  graceMs: number,
): Promise<{ survivors: number[] }> {
  const wanted = new Set(pgids);
  const first = sandboxProcs(id, wanted);
  if (first.length > 0) {
    signalAll(first, "SIGTERM");
    await waitGone(
      first.map((p) => p.pid),
      graceMs,
    );
  }
  const rest = sandboxProcs(id, wanted);
  if (rest.length > 0) {
    signalAll(rest, "SIGKILL");
    await waitGone(
      rest.map((p) => p.pid),
      1_000,
    );
  }
  return { survivors: sandboxProcs(id, wanted).map((p) => p.pid) };
}
