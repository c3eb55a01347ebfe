import { quotaScenario } from "../support/quota-scenario.js";

// The fleet's e2b provider against the local E2B's concurrent-sandbox quota of 5, a real OpenCode
// in every one of the 50 sessions: about 375 s of CPU, 3-5 minutes on 2 cores. Not part of
// ./fleet test for that reason (it made the suite 5 minutes longer and, with the rest of the suite
// beside it, queued sessions past their 5-minute deadline); run it with `npm run test:heavy`.
quotaScenario("e2b");
