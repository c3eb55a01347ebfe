import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { ConnectError, parseMessage, readBody, sendUnary } from "../connect.js";
import type { EnvdContext } from "./context.js";

/** envd's filesystem service (filesystem.Filesystem) and its HTTP /files endpoint. */

const PathRequest = z.object({ path: z.string().min(1) });
const ListDirRequest = z.object({ path: z.string().min(1), depth: z.number().int().min(0).max(32).optional() });
const MoveRequest = z.object({ source: z.string().min(1), destination: z.string().min(1) });
const FilesQuery = z.object({ path: z.string().min(1).optional(), username: z.string().optional() });

function fsError(err: unknown, path: string): ConnectError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT") return new ConnectError("not_found", `path not found: ${path}`);
  if (code === "EEXIST") return new ConnectError("already_exists", `path already exists: ${path}`);
  if (code === "EACCES" || code === "EPERM") return new ConnectError("permission_denied", `permission denied: ${path}`);
  if (code === "ENOTDIR" || code === "EISDIR") return new ConnectError("invalid_argument", `${code}: ${path}`);
  return new ConnectError("internal", `${code ?? "error"}: ${path}`);
}

function permissions(mode: number, dir: boolean): string {
  const bits = "rwxrwxrwx";
  let s = dir ? "d" : "-";
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : "-";
  return s;
}

async function entryInfo(path: string, user: string): Promise<Record<string, unknown>> {
  const l = await lstat(path);
  const link = l.isSymbolicLink();
  const st = link ? await stat(path).catch(() => l) : l;
  return {
    name: basename(path),
    type: link ? "FILE_TYPE_SYMLINK" : st.isDirectory() ? "FILE_TYPE_DIRECTORY" : "FILE_TYPE_FILE",
    path,
    size: String(st.size),
    mode: st.mode & 0o777,
    permissions: permissions(st.mode, st.isDirectory()),
    owner: user,
    group: user,
    modifiedTime: st.mtime.toISOString(),
    ...(link ? { symlinkTarget: await readlink(path) } : {}),
  };
}

export class FilesystemService {
  constructor(private readonly ctx: EnvdContext) {}

  private info(path: string) {
    return entryInfo(path, this.ctx.options.user).catch((err: unknown) => {
      throw fsError(err, path);
    });
  }

  async stat(raw: unknown, res: ServerResponse): Promise<void> {
    const path = this.ctx.resolve(parseMessage(PathRequest, raw).path);
    sendUnary(res, { entry: await this.info(path) });
  }

  async makeDir(raw: unknown, res: ServerResponse): Promise<void> {
    const path = this.ctx.resolve(parseMessage(PathRequest, raw).path);
    const existing = await lstat(path).catch(() => undefined);
    if (existing) throw new ConnectError("already_exists", `path already exists: ${path}`);
    await mkdir(path, { recursive: true }).catch((err: unknown) => {
      throw fsError(err, path);
    });
    sendUnary(res, { entry: await this.info(path) });
  }

  async listDir(raw: unknown, res: ServerResponse): Promise<void> {
    const req = parseMessage(ListDirRequest, raw);
    const root = this.ctx.resolve(req.path);
    const entries: unknown[] = [];
    const walk = async (dir: string, depth: number): Promise<void> => {
      const names = await readdir(dir).catch((err: unknown) => {
        throw fsError(err, dir);
      });
      for (const name of names.sort()) {
        const p = join(dir, name);
        const info = await this.info(p);
        entries.push(info);
        if (depth > 1 && info.type === "FILE_TYPE_DIRECTORY") await walk(p, depth - 1);
      }
    };
    await walk(root, req.depth || 1);
    sendUnary(res, { entries });
  }

  async remove(raw: unknown, res: ServerResponse): Promise<void> {
    const path = this.ctx.resolve(parseMessage(PathRequest, raw).path);
    await lstat(path).catch((err: unknown) => {
      throw fsError(err, path);
    });
    await rm(path, { recursive: true, force: true });
    sendUnary(res, {});
  }

  async move(raw: unknown, res: ServerResponse): Promise<void> {
    const req = parseMessage(MoveRequest, raw);
    const from = this.ctx.resolve(req.source);
    const to = this.ctx.resolve(req.destination);
    await mkdir(dirname(to), { recursive: true }).catch(() => undefined);
    await rename(from, to).catch((err: unknown) => {
      throw fsError(err, from);
    });
    sendUnary(res, { entry: await this.info(to) });
  }

  /** GET /files?path=: the file's bytes. */
  async download(url: URL, res: ServerResponse): Promise<void> {
    const query = FilesQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success || !query.data.path) return httpError(res, 400, "path is required");
    const path = this.ctx.resolve(query.data.path);
    const st = await stat(path).catch(() => undefined);
    if (!st) return httpError(res, 404, `path '${path}' does not exist`);
    if (st.isDirectory()) return httpError(res, 400, `path '${path}' is a directory`);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(st.size) });
    createReadStream(path)
      .on("error", () => res.destroy())
      .pipe(res);
  }

  /** POST /files: multipart (each part's file name its path) or one octet-stream body at ?path=. */
  async upload(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const query = FilesQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success) return httpError(res, 400, z.prettifyError(query.error));
    const type = req.headers["content-type"] ?? "";
    const body = await readBody(req);
    const files: Array<{ path: string; data: Uint8Array }> = [];
    if (type.startsWith("multipart/form-data")) {
      const form = await new Response(body, { headers: { "content-type": type } }).formData().catch(() => undefined);
      if (!form) return httpError(res, 400, "malformed multipart body");
      for (const value of form.getAll("file")) {
        if (typeof value === "string") return httpError(res, 400, "file parts must be files");
        const path = query.data.path ?? value.name;
        if (!path) return httpError(res, 400, "a file part needs a path");
        files.push({ path, data: new Uint8Array(await value.arrayBuffer()) });
      }
    } else if (type.startsWith("application/octet-stream")) {
      if (!query.data.path) return httpError(res, 400, "path is required");
      files.push({ path: query.data.path, data: body });
    } else return httpError(res, 400, `unsupported content type ${type || "(none)"}`);
    if (files.length === 0) return httpError(res, 400, "no files in the request");
    const written: unknown[] = [];
    for (const f of files) {
      const path = this.ctx.resolve(f.path);
      try {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, f.data);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        return httpError(res, code === "EACCES" || code === "EPERM" ? 403 : 400, `cannot write ${path}: ${code}`);
      }
      written.push({ name: basename(path), type: "file", path });
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(written));
  }
}

export function httpError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: status, message }));
}
