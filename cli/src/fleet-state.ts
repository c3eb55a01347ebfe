import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/** What `./fleet up` started, so `down`, `submit` and friends can find it. */
export const FleetState = z.object({
  apiUrl: z.string(),
  modelUrl: z.string(),
  processes: z.array(z.object({ name: z.string(), pid: z.number().int(), logFile: z.string() })),
  startedAt: z.number(),
});
export type FleetState = z.infer<typeof FleetState>;

const file = (home: string): string => join(home, "fleet.json");

export function readFleetState(home: string): FleetState | undefined {
  if (!existsSync(file(home))) return undefined;
  const parsed = FleetState.safeParse(JSON.parse(readFileSync(file(home), "utf8")));
  return parsed.success ? parsed.data : undefined;
}

export function writeFleetState(home: string, state: FleetState): void {
  mkdirSync(home, { recursive: true });
  writeFileSync(file(home), `${JSON.stringify(state, null, 2)}\n`);
}

export function clearFleetState(home: string): void {
  rmSync(file(home), { force: true });
}
