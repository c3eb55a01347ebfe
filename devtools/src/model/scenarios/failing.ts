import type { ScenarioInput } from "../scenario.js";

/** The model never answers the first turn: for tests of stuck agents, timeouts and abort. */
export const stuck: ScenarioInput = {
  name: "stuck",
  turns: [{ type: "text", text: "unreachable", failure: { kind: "hang" } }],
};

/** Every request of the first turn fails with HTTP 500: for tests of agent-side model errors. */
export const broken: ScenarioInput = {
  name: "broken",
  turns: [{ type: "text", text: "unreachable", failure: { kind: "http_500" } }],
};

/** A long-running bash command (30 s): something for abort to interrupt. */
export const slow: ScenarioInput = {
  name: "slow",
  turns: [
    { type: "tools", calls: [{ name: "bash", arguments: { command: "sleep 30" } }] },
    { type: "text", text: "Slept." },
  ],
};
