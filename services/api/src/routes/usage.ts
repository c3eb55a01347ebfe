import { FleetError, ZERO_USAGE, usageDay, type SessionStore, type UsageTotals } from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { reaches } from "../auth.js";
import { API_KEY_SECURITY, ProjectParams, ProjectUsage, UsageQuery, V1_ERRORS, errors } from "../schemas.js";

const DAY_MS = 86_400_000;
/** Most days one query covers. */
const MAX_DAYS = 366;

/** A project's model usage from the gateway's ledger, per UTC day. */
export const usageRoutes =
  (deps: { store: SessionStore }): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      "/v1/projects/:id/usage",
      {
        schema: {
          summary: "A project's model usage per UTC day, from the model gateway's ledger",
          params: ProjectParams,
          querystring: UsageQuery,
          security: API_KEY_SECURITY,
          response: { 200: ProjectUsage, ...errors(...V1_ERRORS, 403) },
        },
        config: { access: "key" },
      },
      async (req) => {
        const projectId = req.params.id;
        if (!reaches(req, projectId))
          throw new FleetError("forbidden", `this API key does not reach project ${projectId}`);
        const to = req.query.to ?? usageDay(Date.now());
        const from = req.query.from ?? usageDay(Math.max(0, Date.parse(`${to}T00:00:00Z`) - 29 * DAY_MS));
        const span = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS;
        if (span < 0) throw new FleetError("bad_input", `from (${from}) is after to (${to})`);
        if (span >= MAX_DAYS) throw new FleetError("bad_input", `at most ${MAX_DAYS} days at once`);
        const days = await deps.store.projectUsage(projectId, from, to);
        const total = days.reduce<UsageTotals>(
          (t, d) => ({
            calls: t.calls + d.calls,
            tokensIn: t.tokensIn + d.tokensIn,
            tokensOut: t.tokensOut + d.tokensOut,
            cachedTokens: t.cachedTokens + d.cachedTokens,
            cost: Math.round((t.cost + d.cost) * 1e9) / 1e9,
          }),
          { ...ZERO_USAGE },
        );
        return { projectId, from, to, total, days };
      },
    );
  };
