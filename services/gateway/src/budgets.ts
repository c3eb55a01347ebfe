import { usageDay, type GatewayGrant, type UsageTotals } from "@fleet/shared";
import { limitFor, type ProjectLimits } from "./prices.js";
import type { SessionView } from "./views.js";

/** Per project and UTC day, from the fleet's config; a session's own limits come with its request. */
export interface Budgets {
  dailyTokens: ProjectLimits;
  dailyCost: ProjectLimits;
}

export interface Refusal {
  kind: "session_budget" | "project_budget";
  message: string;
}

const fmt = (n: number): string => (Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(6).replace(/0+$/, ""));

/**
 * Whether a call would pass a budget: refused once what was spent has reached a limit. The call
 * that reaches it is let through (its size is not known before it is answered), so a budget is
 * passed by at most the calls under way when it was reached.
 */
export async function budgetRefusal(
  budgets: Budgets,
  view: SessionView,
  grant: GatewayGrant,
  projectDay: () => Promise<UsageTotals>,
): Promise<Refusal | undefined> {
  const budget = view.session?.config.budget;
  const used = view.usage;
  const tokens = used.tokensIn + used.tokensOut;
  if (budget?.maxTokens !== undefined && tokens >= budget.maxTokens)
    return {
      kind: "session_budget",
      message: `budget exceeded: session ${grant.sessionId} used ${fmt(tokens)} of its ${fmt(budget.maxTokens)} tokens`,
    };
  if (budget?.maxCost !== undefined && used.cost >= budget.maxCost)
    return {
      kind: "session_budget",
      message: `budget exceeded: session ${grant.sessionId} spent ${fmt(used.cost)} of its ${fmt(budget.maxCost)}`,
    };
  const dayTokens = limitFor(budgets.dailyTokens, grant.projectId);
  const dayCost = limitFor(budgets.dailyCost, grant.projectId);
  if (dayTokens === undefined && dayCost === undefined) return undefined;
  const day = await projectDay();
  const today = usageDay(Date.now());
  const dayUsed = day.tokensIn + day.tokensOut;
  if (dayTokens !== undefined && dayUsed >= dayTokens)
    return {
      kind: "project_budget",
      message: `budget exceeded: project ${grant.projectId} used ${fmt(dayUsed)} of its ${fmt(dayTokens)} tokens for ${today} (UTC)`,
    };
  if (dayCost !== undefined && day.cost >= dayCost)
    return {
      kind: "project_budget",
      message: `budget exceeded: project ${grant.projectId} spent ${fmt(day.cost)} of its ${fmt(dayCost)} for ${today} (UTC)`,
    };
  return undefined;
}
