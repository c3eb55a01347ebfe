import { execFile } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { FleetError, errorMessage } from "@fleet/shared/errors";
import { applyFerretDbPatch } from "./ferretdb-patch.js";

const run = promisify(execFile);

export const NATS_SERVER_VERSION = "v2.15.2";
export const FERRETDB_VERSION = "v1.24.2";
/**
 * The version FerretDB reports once built here: upstream's plus the fleet's changes (see
 * ferretdb-patch.ts). Bumped with every change to them, so an older binary in the tools folder is
 * rebuilt; the store adapter refuses a FerretDB older than the build it requires (store/mongo-store.ts).
 */
export const FERRETDB_BUILD = `${FERRETDB_VERSION}-fleet.2`;

export type Progress = (message: string) => void;

async function versionOf(binary: string): Promise<string | undefined> {
  if (!existsSync(binary)) return undefined;
  try {
    const { stdout } = await run(binary, ["--version"], { timeout: 10_000 });
    return stdout;
  } catch {
    return undefined;
  }
}

async function goEnv(): Promise<NodeJS.ProcessEnv> {
  try {
    await run("go", ["version"], { timeout: 20_000 });
  } catch {
    throw new FleetError(
      "infra",
      "go not found: install Go >= 1.22, or set NATS_URL and MONGODB_URI to use running servers",
    );
  }
  // GOTOOLCHAIN=local: build with the Go that is here rather than fetching another toolchain.
  return { ...process.env, GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod", CGO_ENABLED: "0" };
}

async function go(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<string> {
  try {
    const { stdout } = await run("go", args, { env, cwd, timeout: 20 * 60_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new FleetError("infra", `go ${args.join(" ")} failed: ${stderr.trim().slice(-2_000) || errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** nats-server built from the Go module proxy into <tools>/bin; a second call reuses it. */
export async function ensureNatsServer(toolsDir: string, progress: Progress = () => {}): Promise<string> {
  const bin = join(toolsDir, "bin");
  const target = join(bin, "nats-server");
  if ((await versionOf(target))?.includes(NATS_SERVER_VERSION)) return target;
  progress(`building nats-server ${NATS_SERVER_VERSION} with go install (first run only)`);
  const env = await goEnv();
  // Build into a private GOBIN and rename, so a concurrent run never sees half a binary.
  mkdirSync(toolsDir, { recursive: true });
  const staging = mkdtempSync(join(toolsDir, ".build-nats-"));
  try {
    await go(["install", `github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}`], { ...env, GOBIN: staging });
    mkdirSync(bin, { recursive: true });
    renameSync(join(staging, "nats-server"), target);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}

/**
 * FerretDB built from the Go module proxy. Its module embeds build/version/version.txt, which the
 * published module lacks, and a build whose main module is FerretDB panics without it; so the
 * module source is copied out of the module cache, the version file added, and built there, with
 * the fleet's changes (ferretdb-patch.ts: _id lookups on the _id index, and one read-modify-write
 * command at a time per collection, which gives MongoDB's single-document atomicity).
 */
export async function ensureFerretDb(toolsDir: string, progress: Progress = () => {}): Promise<string> {
  const target = join(toolsDir, "bin", "ferretdb");
  if ((await versionOf(target))?.includes(FERRETDB_BUILD)) return target;
  progress(`building FerretDB ${FERRETDB_BUILD} from the Go module proxy (first run only)`);
  await buildFerretDb(toolsDir, target, true);
  return target;
}

/**
 * Upstream FerretDB without the fleet's changes, into `dir` (never the tools' bin, which the fleet
 * runs): for the tests that show what the changes are for and that the store refuses it.
 */
export async function ensureUpstreamFerretDb(dir: string, progress: Progress = () => {}): Promise<string> {
  const target = join(dir, "ferretdb");
  if ((await versionOf(target))?.includes(`version: ${FERRETDB_VERSION}\n`)) return target;
  progress(`building upstream FerretDB ${FERRETDB_VERSION} (unchanged) into ${dir}`);
  await buildFerretDb(dir, target, false);
  return target;
}

async function buildFerretDb(workDir: string, target: string, fleetChanges: boolean): Promise<void> {
  const env = await goEnv();
  const info = JSON.parse(
    await go(["mod", "download", "-json", `github.com/FerretDB/FerretDB@${FERRETDB_VERSION}`], env),
  ) as {
    Dir?: string;
    Error?: string;
  };
  if (!info.Dir)
    throw new FleetError("infra", `could not download FerretDB ${FERRETDB_VERSION}: ${info.Error ?? "no module dir"}`);
  mkdirSync(workDir, { recursive: true });
  // Built in a private folder and renamed, so a concurrent run never sees half a binary.
  const src = mkdtempSync(join(workDir, ".build-ferretdb-"));
  try {
    cpSync(info.Dir, src, { recursive: true });
    makeWritable(src);
    writeFileSync(
      join(src, "build", "version", "version.txt"),
      `${fleetChanges ? FERRETDB_BUILD : FERRETDB_VERSION}\n`,
    );
    if (fleetChanges) applyFerretDbPatch(src, FERRETDB_VERSION);
    const out = join(src, "ferretdb.bin");
    await go(["build", "-o", out, "./cmd/ferretdb"], env, src);
    mkdirSync(dirname(target), { recursive: true });
    renameSync(out, target);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}

function makeWritable(dir: string): void {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    const st = statSync(p);
    chmodSync(p, st.mode | 0o200);
    if (st.isDirectory()) makeWritable(p);
  }
  chmodSync(dir, statSync(dir).mode | 0o200);
}
