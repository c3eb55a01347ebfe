import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

/** Runs `use` on the store and closes it, whatever happens. */
async function withStore<T>(ctx: CliContext, use: (store: SessionStore) => Promise<T>): Promise<T> {
  const store = await openStoreFor(ctx);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** `./fleet keys create --project p [--project q] [--label l]`: the key is shown once. */
export function keysCreateCmd(
  ctx: CliContext,
  a: { project: string[]; label: string; json: boolean },
): Promise<number> {
  return withStore(ctx, async (store) => {
    const { id, key } = await createKey(store, a.project, a.label);
    if (a.json) ctx.out(JSON.stringify({ id, key, projects: a.project, label: a.label }));
    else {
      ctx.out(`key ${id} for ${a.project.join(", ")} (shown once, store it now):`);
      ctx.out(key);
    }
    return 0;
  });
}

/** `./fleet keys revoke ID`: exit 1 when there was no active key of that id. */
export function keysRevokeCmd(ctx: CliContext, a: { id: string }): Promise<number> {
  return withStore(ctx, async (store) => {
    const done = await store.revokeApiKey(a.id);
    ctx.out(done ? `revoked ${a.id}` : `no active key ${a.id}`);
    return done ? 0 : 1;
  });
}

/** `./fleet keys ls`: every key (never the secret itself). */
export function keysLsCmd(ctx: CliContext, a: { json: boolean }): Promise<number> {
  return withStore(ctx, async (store) => {
    const keys = await store.listApiKeys();
    if (a.json)
      ctx.out(
        JSON.stringify(
          keys.map((k) => ({
            id: k.id,
            projects: k.projects,
            label: k.label,
            createdAt: k.createdAt,
            revokedAt: k.revokedAt,
          })),
        ),
      );
    for (const k of a.json ? [] : keys) {
      ctx.out(
        `${k.id}  ${k.revokedAt ? "revoked" : "active "}  ${new Date(k.createdAt).toISOString()}  ${k.projects.join(",")}  ${k.label}`,
      );
    }
    return 0;
  });
}
