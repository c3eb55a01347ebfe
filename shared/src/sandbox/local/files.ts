import { constants } from "node:fs";
import { lchown, mkdir, open, readlink, realpath, stat, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { badPath, relativeSegments } from "../paths.js";

/**
 * File access below a base folder that processes inside the sandbox can change at any moment, so
 * symlinks are the threat: a parent may point anywhere, the final component may be a link or a FIFO.
 * Parents are resolved to real paths and checked; the file is opened without following a final
 * symlink; and the opened descriptor's real path is checked again, which closes the window between
 * the checks and the open.
 */

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const MAX_READ_BYTES = 100 * 1024 * 1024;

function inside(base: string, path: string): boolean {
  return path === base || path.startsWith(`${base}/`);
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? "";
}

/**
 * Walks the parent folders of `segments` below `base` (a real path), following links only where
 * they stay inside. Missing folders are created when `create`, else the walk yields null.
 */
async function parentDir(
  base: string,
  original: string,
  segments: readonly string[],
  create: boolean,
  owner?: number,
): Promise<string | null> {
  let dir = base;
  for (const seg of segments.slice(0, -1)) {
    const next = join(dir, seg);
    let real: string;
    try {
      real = await realpath(next);
    } catch (err) {
      if (errno(err) === "ENOTDIR") throw badPath(original, `${seg} is not a folder`);
      if (errno(err) !== "ENOENT") throw err;
      if (!create) return null;
      try {
        await mkdir(next, { mode: 0o755 });
        if (owner !== undefined) await lchown(next, owner, owner);
      } catch (mkErr) {
        if (errno(mkErr) !== "EEXIST") throw mkErr;
      }
      real = await realpath(next);
    }
    if (!inside(base, real)) throw badPath(original, "resolves outside the sandbox folder (symlink)");
    if (!(await stat(real)).isDirectory()) throw badPath(original, `${seg} is not a folder`);
    dir = real;
  }
  return dir;
}

/** The descriptor's own path, as the kernel resolved it; the last word on where the file is. */
async function checkOpened(fh: FileHandle, base: string, original: string): Promise<string> {
  const real = await readlink(`/proc/self/fd/${fh.fd}`);
  if (!inside(base, real)) throw badPath(original, "resolves outside the sandbox folder");
  if (!(await fh.stat()).isFile()) throw badPath(original, "not a regular file");
  return real;
}

function openError(err: unknown, original: string): unknown {
  if (errno(err) === "ELOOP") return badPath(original, "is a symlink");
  if (errno(err) === "EISDIR") return badPath(original, "is a folder");
  if (errno(err) === "ENXIO") return badPath(original, "is a special file");
  return err;
}

/** `owner`: the uid (and gid) that new files and folders are given, the sandbox's own user. */
export async function writeInside(
  base: string,
  path: string,
  content: Uint8Array | string,
  owner?: number,
): Promise<void> {
  const segments = relativeSegments(path);
  const dir = (await parentDir(base, path, segments, true, owner)) as string;
  const target = join(dir, segments[segments.length - 1] as string);
  let fh: FileHandle;
  let created = true;
  try {
    fh = await open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, 0o644);
  } catch (err) {
    if (errno(err) !== "EEXIST") throw openError(err, path);
    created = false;
    try {
      // O_NONBLOCK: opening a FIFO for writing would otherwise wait forever for a reader.
      fh = await open(target, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err2) {
      throw openError(err2, path);
    }
  }
  try {
    try {
      await checkOpened(fh, base, path);
    } catch (err) {
      if (created) await unlink(await readlink(`/proc/self/fd/${fh.fd}`)).catch(() => undefined);
      throw err;
    }
    if (created && owner !== undefined) await fh.chown(owner, owner);
    await fh.truncate(0);
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
}

/** Null when the file (or one of its folders) does not exist. */
export async function readInside(base: string, path: string): Promise<Uint8Array | null> {
  const segments = relativeSegments(path);
  const dir = await parentDir(base, path, segments, false);
  if (dir === null) return null;
  let fh: FileHandle;
  try {
    fh = await open(join(dir, segments[segments.length - 1] as string), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if (errno(err) === "ENOENT") return null;
    throw openError(err, path);
  }
  try {
    await checkOpened(fh, base, path);
    const { size } = await fh.stat();
    if (size > MAX_READ_BYTES) throw badPath(path, `file larger than ${MAX_READ_BYTES} bytes`);
    return new Uint8Array(await fh.readFile());
  } finally {
    await fh.close();
  }
}
