import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { FleetError, errorMessage } from "../../errors/index.js";

/**
 * The on-disk registry: one folder per sandbox below rootDir, with `sandbox.json` describing it.
 * Any process on the host (another fleet instance, the reaper, the CLI) reads the same files, so
 * everything read back is validated and every write is a rename of a complete file.
 */

export const LOCAL_ID = /^lsb-[0-9a-f]{16}$/;

export function newSandboxId(): string {
  return `lsb-${randomBytes(8).toString("hex")}`;
}

export const ProcessEntry = z.object({
  pgid: z.number().int().positive(),
  /** A host-side network bridge: ended with the sandbox, but not what keeps it alive. */
  bridge: z.boolean().optional(),
  command: z.string(),
  log: z.string(),
  startedAt: z.number().int(),
});
export type ProcessEntry = z.infer<typeof ProcessEntry>;

export const RegistryRecord = z.object({
  version: z.literal(1),
  id: z.string().regex(LOCAL_ID),
  provider: z.literal("local"),
  metadata: z.record(z.string(), z.string()),
  startedAt: z.number().int(),
  endAt: z.number().int(),
  agentPort: z.number().int().min(1).max(65535),
  isolation: z.enum(["bubblewrap", "none"]),
  /** The sandbox's own user (isolated sandboxes only). */
  uid: z.number().int().positive().optional(),
  /** Host loopback ports the sandbox may reach (isolated sandboxes only). */
  egress: z.array(z.number().int().min(1024).max(65535)).default([]),
  /** Process groups of background processes, so a process that did not start them can end them. */
  processes: z.array(ProcessEntry),
});
export type RegistryRecord = z.infer<typeof RegistryRecord>;

const Envs = z.record(z.string(), z.string());

export interface SandboxLayout {
  dir: string;
  workspace: string;
  home: string;
  tmp: string;
  logs: string;
  /** Unix sockets joining the sandbox's network namespace to the host (isolated sandboxes only). */
  bridge: string;
  registry: string;
  envs: string;
}

export function layoutOf(dir: string): SandboxLayout {
  return {
    dir,
    workspace: join(dir, "workspace"),
    home: join(dir, "home"),
    tmp: join(dir, "tmp"),
    logs: join(dir, "logs"),
    bridge: join(dir, "bridge"),
    registry: join(dir, "sandbox.json"),
    envs: join(dir, "envs.json"),
  };
}

export function goneError(id: string, cause?: unknown): FleetError {
  return new FleetError("sandbox", `sandbox ${id} is gone`, { retryable: false, cause });
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? "");
}

/** A complete file or none: readers never see half a record. */
async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, content, { mode, flag: "wx" });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

export async function writeRecord(layout: SandboxLayout, record: RegistryRecord): Promise<void> {
  await writeAtomic(layout.registry, `${JSON.stringify(record, null, 2)}\n`, 0o644);
}

/** Secrets for the sandbox's processes live apart from the record, readable by the owner only. */
export async function writeEnvs(layout: SandboxLayout, envs: Record<string, string>): Promise<void> {
  await writeAtomic(layout.envs, JSON.stringify(envs), 0o600);
}

export async function readEnvs(layout: SandboxLayout, id: string): Promise<Record<string, string>> {
  try {
    return Envs.parse(JSON.parse(await readFile(layout.envs, "utf8")));
  } catch (err) {
    if (isCode(err, "ENOENT", "ENOTDIR")) throw goneError(id, err);
    throw new FleetError("sandbox", `sandbox ${id}: unreadable envs file: ${errorMessage(err)}`, {
      retryable: false,
      cause: err,
    });
  }
}

/** Null when the sandbox is not registered (never was, or killed); throws when the file is not a record. */
export async function readRecord(layout: SandboxLayout): Promise<RegistryRecord | null> {
  let text: string;
  try {
    text = await readFile(layout.registry, "utf8");
  } catch (err) {
    if (isCode(err, "ENOENT", "ENOTDIR")) return null;
    throw new FleetError("sandbox", `unreadable sandbox registry ${layout.registry}: ${errorMessage(err)}`, {
      retryable: true,
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FleetError("sandbox", `sandbox registry ${layout.registry} is not JSON`, {
      retryable: false,
      cause: err,
    });
  }
  const parsed = RegistryRecord.safeParse(json);
  if (!parsed.success) {
    throw new FleetError("sandbox", `invalid sandbox registry ${layout.registry}: ${z.prettifyError(parsed.error)}`, {
      retryable: false,
    });
  }
  return parsed.data;
}

const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 5_000;

/**
 * Serialises read-modify-write of one sandbox's record across processes. mkdir is atomic; a lock
 * left by a crashed holder is taken over once it is older than any holder could legitimately be.
 */
export async function withRecordLock<T>(layout: SandboxLayout, id: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(layout.dir, ".lock");
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if (isCode(err, "ENOENT", "ENOTDIR")) throw goneError(id, err);
      if (!isCode(err, "EEXIST"))
        throw new FleetError("sandbox", `sandbox ${id}: cannot lock registry`, { retryable: true, cause: err });
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > LOCK_STALE_MS) await rmdir(lock).catch(() => undefined);
      else if (Date.now() > until)
        throw new FleetError("sandbox", `sandbox ${id}: registry lock busy`, { retryable: true });
      else await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
    }
  }
  try {
    return await fn();
  } finally {
    await rmdir(lock).catch(() => undefined);
  }
}
