import { MongoClient, type ServerDescriptionChangedEvent } from "mongodb";
import { errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";

/**
 * Keeps a store client from staying stuck after the store came back. Seen once in a poller after
 * the store restarted: every operation failed server selection with the outage's last error
 * ("connection 2 … closed") for minutes, while the other services' clients had recovered and a
 * fresh connection answered at once. The driver's own monitor normally recovers within a
 * heartbeat; this is the backstop: when the server has been unknown for longer than `stuckMs` and a
 * fresh client reaches the store, the client is closed and connected again (collections obtained
 * from it keep working; operations in flight fail and their callers retry them).
 */

export interface HealState {
  /** Since when the client has seen the store as unknown (undefined: known). */
  unknownSince: number | undefined;
  /** When the last reconnect happened. */
  lastHealAt: number | undefined;
}

/** True when a fresh probe should be tried: unknown for long, and not healed just before. */
export function shouldProbe(state: HealState, now: number, stuckMs: number): boolean {
  if (state.unknownSince === undefined || now - state.unknownSince < stuckMs) return false;
  return state.lastHealAt === undefined || now - state.lastHealAt >= stuckMs;
}

export interface HealOptions {
  uri: string;
  stuckMs?: number;
  checkEveryMs?: number;
}

export function healWhenStuck(client: MongoClient, options: HealOptions, logger: Logger): () => void {
  const stuckMs = options.stuckMs ?? 20_000;
  const state: HealState = { unknownSince: undefined, lastHealAt: undefined };
  let healing = false;
  let stopped = false;
  const onChange = (e: ServerDescriptionChangedEvent): void => {
    const unknown = e.newDescription.type === "Unknown";
    if (unknown && state.unknownSince === undefined) {
      state.unknownSince = Date.now();
      logger.warn(
        { err: e.newDescription.error ? errorMessage(e.newDescription.error) : undefined },
        "store unreachable",
      );
    } else if (!unknown && state.unknownSince !== undefined) {
      logger.info({ afterMs: Date.now() - state.unknownSince }, "store reachable again");
      state.unknownSince = undefined;
    }
  };
  client.on("serverDescriptionChanged", onChange);
  const timer = setInterval(() => {
    if (stopped || healing || !shouldProbe(state, Date.now(), stuckMs)) return;
    healing = true;
    void (async () => {
      const probe = new MongoClient(options.uri, { serverSelectionTimeoutMS: 2_000, connectTimeoutMS: 2_000 });
      try {
        await probe.connect();
        await probe.db("admin").command({ ping: 1 });
      } catch {
        return; // The store is really down: nothing to heal.
      } finally {
        await probe.close().catch(() => undefined);
      }
      if (stopped) return;
      logger.warn(
        { unknownForMs: Date.now() - (state.unknownSince ?? Date.now()) },
        "store answers a fresh client but not this one: reconnecting",
      );
      state.lastHealAt = Date.now();
      await client.close().catch(() => undefined);
      await client.connect().catch((err: unknown) => logger.warn({ err: errorMessage(err) }, "store reconnect failed"));
    })().finally(() => {
      healing = false;
    });
  }, options.checkEveryMs ?? 5_000);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    client.off("serverDescriptionChanged", onChange);
  };
}
