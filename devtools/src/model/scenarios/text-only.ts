import type { ScenarioInput } from "../scenario.js";

export const TEXT_ONLY_ANSWER = "Hello! This is the scripted model answering in plain text.";

/** One plain answer, no tools: the quickest possible session. */
export const textOnly: ScenarioInput = {
  name: "text-only",
  turns: [{ type: "text", text: TEXT_ONLY_ANSWER }],
};
