import { z } from "zod";

/** Price per million tokens. `cachedIn` defaults to `in` when the provider gives no discount. */
export interface ModelPrice {
  in: number;
  out: number;
  cachedIn?: number;
}

const price = z.coerce.number().nonnegative().max(1_000_000);

/** Splits `key=value,…` at the last `=` of each pair (model ids hold `/` and `:`, never `=`). */
function pairs(s: string): Array<[string, string]> {
  return s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const at = p.lastIndexOf("=");
      return [p.slice(0, at).trim(), p.slice(at + 1).trim()];
    });
}

/** `GATEWAY_PRICES`: `model=in/out[/cached],…`, `*` naming the price of any other model. */
export const PriceTable = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const table = new Map<string, ModelPrice>();
    for (const [model, value] of pairs(s)) {
      const parts = value.split("/").map((v) => price.safeParse(v));
      const [pin, pout, pcached] = parts;
      if (!model || !pin?.success || !pout?.success || parts.length > 3 || (pcached && !pcached.success)) {
        ctx.addIssue({
          code: "custom",
          message: `expected model=in/out[/cached] (per million tokens), got ${model}=${value}`,
        });
        return z.NEVER;
      }
      table.set(model, { in: pin.data, out: pout.data, ...(pcached?.success ? { cachedIn: pcached.data } : {}) });
    }
    return table;
  });
export type PriceTable = Map<string, ModelPrice>;

/** `project=limit,…`, `*` naming the limit of any other project. */
export const ProjectLimits = z
  .string()
  .default("")
  .transform((s, ctx) => {
    const limits = new Map<string, number>();
    for (const [project, value] of pairs(s)) {
      const n = z.coerce.number().positive().safeParse(value);
      if (!project || !n.success) {
        ctx.addIssue({
          code: "custom",
          message: `expected project=limit (a positive number), got ${project}=${value}`,
        });
        return z.NEVER;
      }
      limits.set(project, n.data);
    }
    return limits;
  });
export type ProjectLimits = Map<string, number>;

export function limitFor(limits: ProjectLimits, projectId: string): number | undefined {
  return limits.get(projectId) ?? limits.get("*");
}

/** Cost of a call: cached prompt tokens at their own price when the table has one. */
export function costOf(
  table: PriceTable,
  model: string,
  usage: { tokensIn: number; tokensOut: number; cachedTokens: number },
): number {
  const p = table.get(model) ?? table.get("*");
  if (!p) return 0;
  const cached = Math.min(usage.cachedTokens, usage.tokensIn);
  const cost = ((usage.tokensIn - cached) * p.in + cached * (p.cachedIn ?? p.in) + usage.tokensOut * p.out) / 1_000_000;
  // Rounded to a billionth, so that sums in the ledger do not collect float noise.
  return Math.round(cost * 1e9) / 1e9;
}
