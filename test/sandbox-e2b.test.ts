import { afterAll } from "vitest";
import { startLocalE2B } from "../devtools/src/e2b/index.js";
import { E2BSandboxProvider } from "../shared/src/sandbox/index.js";
import { crashCreator } from "./support/crash-creator.js";
import { logger } from "./support/fixtures.js";
import { describeSandboxProviderConformance } from "./support/sandbox-conformance.js";

/** The fleet's e2b adapter, through the unmodified E2B SDK, against a local E2B (devtools/src/e2b). */
const e2b = await startLocalE2B({}, logger);
afterAll(() => e2b.stop());

const config = {
  apiKey: e2b.apiKey,
  template: "opencode",
  apiUrl: e2b.apiUrl,
  sandboxUrl: e2b.sandboxUrl,
  portUrl: e2b.portUrl,
};

describeSandboxProviderConformance("e2b (local E2B)", {
  makeProvider: () => new E2BSandboxProvider(config, logger),
  crashCreator: (metadata) =>
    crashCreator(["e2b", JSON.stringify(metadata)], { SANDBOX_CREATOR_E2B: JSON.stringify(config) }),
  // What envd gives every process (and bash -l adds), besides the sandbox's own variables.
  baseEnv: [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "PWD",
    "SHLVL",
    "_",
    "E2B_SANDBOX",
    "E2B_SANDBOX_ID",
    "FLEET_SANDBOX_ID",
  ],
});
