import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FleetError, MongoSessionStore, createLogger, newApiKey, type SessionStore } from "@fleet/shared";
import { readInfraState } from "@fleet/devtools/infra";
import { infraDir, type CliContext } from "./infra.js";

/** The store the CLI manages keys in: MONGODB_URI, or the one `./fleet up` started. */
export async function openStoreFor(ctx: CliContext, database = ctx.env.FLEET_DB ?? "fleet"): Promise<SessionStore> {
  const uri = ctx.env.MONGODB_URI ?? readInfraState(infraDir(ctx))?.mongoUri;
  if (!uri) throw new FleetError("config", "no store: start one with ./fleet up, or set MONGODB_URI");
  const store = await MongoSessionStore.connect(
    { uri, database, serverSelectionTimeoutMs: 5_000 },
    createLogger({ name: "cli", level: "warn" }),
  );
  await store.init();
  return store;
}

/** Makes a key, stores its hash, and returns the key itself (shown once). */
export async function createKey(
  store: SessionStore,
  projects: string[],
  label: string,
): Promise<{ id: string; key: string }> {
  const { key, record } = newApiKey(projects, label);
  await store.saveApiKey(record);
  return { id: record.id, key };
}

export function keyFile(ctx: CliContext): string {
  return join(ctx.home, "api-key");
}

/** The key the CLI talks to the api with: FLEET_API_KEY, or the development key of `./fleet up`. */
export function cliApiKey(ctx: CliContext): string | undefined {
  if (ctx.env.FLEET_API_KEY) return ctx.env.FLEET_API_KEY;
  return existsSync(keyFile(ctx)) ? readFileSync(keyFile(ctx), "utf8").trim() : undefined;
}

export function saveDevKey(ctx: CliContext, key: string): void {
  writeFileSync(keyFile(ctx), `${key}\n`, { mode: 0o600 });
}

/** `./fleet keys create --project p [--project q] [--label l] | revoke <id> | ls` */
export async function keysCmd(ctx: CliContext, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const store = await openStoreFor(ctx);
  try {
    if (sub === "create") {
      const { values } = parseArgs({
        args: rest,
        options: { project: { type: "string", multiple: true, default: [] }, label: { type: "string", default: "" } },
      });
      const projects = values.project ?? [];
      if (projects.length === 0)
        throw new FleetError("bad_input", "usage: ./fleet keys create --project <id|*> [--project …] [--label text]");
      const { id, key } = await createKey(store, projects, values.label ?? "");
      ctx.out(`key ${id} for ${projects.join(", ")} (shown once, store it now):`);
      ctx.out(key);
      return 0;
    }
    if (sub === "revoke") {
      const id = rest[0];
      if (!id) throw new FleetError("bad_input", "usage: ./fleet keys revoke <key id>");
      const done = await store.revokeApiKey(id);
      ctx.out(done ? `revoked ${id}` : `no active key ${id}`);
      return done ? 0 : 1;
    }
    if (sub === "ls") {
      for (const k of await store.listApiKeys()) {
        ctx.out(
          `${k.id}  ${k.revokedAt ? "revoked" : "active "}  ${new Date(k.createdAt).toISOString()}  ${k.projects.join(",")}  ${k.label}`,
        );
      }
      return 0;
    }
    throw new FleetError("bad_input", "usage: ./fleet keys create|revoke|ls");
  } finally {
    await store.close();
  }
}
