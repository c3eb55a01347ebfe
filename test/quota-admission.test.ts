import { quotaScenario } from "./support/quota-scenario.js";

// On the simulated provider (FLEET_SIM_QUOTA): its sandboxes and agents cost next to nothing, so the
// 50 sessions drain in seconds. The same scenario on the local E2B, with a real OpenCode per session,
// is test/heavy/quota-admission-e2b.test.ts.
quotaScenario("simulated");
