export {
  parseScenario,
  Scenario,
  ScenarioFailure,
  type ScenarioInput,
  ScenarioTurn,
  TextTurn,
  ToolCall,
  ToolsTurn,
  turnIndex,
} from "./scenario.js";
export { type SeenRequest, startScriptedModel, type ScriptedModel, type ScriptedModelOptions } from "./server.js";
export { SCENARIOS, scenarioByName, DEMO_FILE, DEMO_TODOS, TEXT_ONLY_ANSWER } from "./scenarios/index.js";
