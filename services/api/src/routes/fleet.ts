import { FleetError, poolSummary, type SessionStore } from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { API_KEY_SECURITY, FleetOverview, V1_ERRORS, errors } from "../schemas.js";

/** How many of the newest dead letters the overview carries. */
const DEAD_LETTERS = 20;

/**
 * The fleet as a whole (the dashboard's fleet page): active sessions per project by stage, the
 * admission slots held, the warm pool per key, the newest dead letters. It spans every project, so
 * only a key for all projects (`*`) may read it.
 */
export const fleetRoutes =
  (deps: { store: SessionStore; fleet: string }): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      "/v1/fleet",
      {
        schema: {
          summary:
            "What runs and waits per project, admission, the warm pool and dead letters (a key for all projects)",
          security: API_KEY_SECURITY,
          response: { 200: FleetOverview, ...errors(...V1_ERRORS, 403) },
        },
        config: { access: "key" },
      },
      async (req) => {
        if (req.apiKey && !req.apiKey.projects.includes("*"))
          throw new FleetError(
            "forbidden",
            "the fleet overview spans every project: it needs a key for all projects (*)",
          );
        const { store } = deps;
        const now = Date.now();
        const [counts, held, learned, statuses, entries, deadLetters] = await Promise.all([
          store.activeCounts(),
          store.slotsInUse("global"),
          store.learnedCap("global"),
          store.poolStatuses(deps.fleet),
          store.poolEntries(deps.fleet),
          store.deadLetters({ limit: DEAD_LETTERS }),
        ]);
        const projects = new Map<string, { projectId: string; queued: number; starting: number; running: number }>();
        for (const c of counts) {
          const p = projects.get(c.projectId) ?? { projectId: c.projectId, queued: 0, starting: 0, running: 0 };
          if (c.status === "running") p.running += c.count;
          else if (c.phase === "queued") p.queued += c.count;
          else p.starting += c.count;
          projects.set(c.projectId, p);
        }
        return {
          at: now,
          projects: [...projects.values()],
          admission: {
            sandboxesHeld: held,
            ...(learned?.cap ? { learnedCap: learned.cap } : {}),
            ...(learned?.providerLimit ? { providerLimit: learned.providerLimit } : {}),
          },
          pool: poolSummary(statuses, entries, now),
          deadLetters,
        };
      },
    );
  };
