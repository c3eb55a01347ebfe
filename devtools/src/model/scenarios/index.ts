import type { ScenarioInput } from "../scenario.js";
import { demo } from "./demo.js";
import { broken, slow, stuck } from "./failing.js";
import { textOnly } from "./text-only.js";

export { DEMO_FILE, DEMO_TODOS } from "./demo.js";
export { TEXT_ONLY_ANSWER } from "./text-only.js";

/** Built-in scenarios by name (TS modules rather than JSON files, which tsc would not copy to dist). */
export const SCENARIOS: Readonly<Record<string, ScenarioInput>> = {
  demo,
  "text-only": textOnly,
  slow,
  stuck,
  broken,
};

export function scenarioByName(name: string): ScenarioInput | undefined {
  return Object.hasOwn(SCENARIOS, name) ? SCENARIOS[name] : undefined;
}
