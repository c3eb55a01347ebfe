import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SimulatedSandboxProvider, readSimulatedState } from "../devtools/src/simulated/index.js";
import { SANDBOX_GRACE_MS } from "../shared/src/index.js";
import { createLogger } from "../shared/src/log/index.js";
import { LifetimeKeeper } from "../services/poller/src/lifetime.js";

const logger = createLogger({ name: "lifetime-test", level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "fleet-lifetime-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("keeping a sandbox alive up to its session's deadline", () => {
  it("extends every third of the provider's maximum, never past the deadline + grace, and names a lapse", async () => {
    const max = 600_000;
    const provider = new SimulatedSandboxProvider({ dir, maxTimeoutMs: max }, logger);
    const meta = { fleet: "f", sessionId: "s1", projectId: "p", attempt: "1" };
    const sandbox = await provider.create({ metadata: meta, envs: {}, timeoutMs: max });
    const t0 = Date.now();
    const deadlineAt = t0 + 1_000_000;
    const keeper = new LifetimeKeeper(provider, sandbox.id, deadlineAt, logger);
    const extensions = async () => (await readSimulatedState(dir, sandbox.id))?.extensions;
    await keeper.keep(t0);
    expect(await extensions()).toBe(1);
    await keeper.keep(t0 + max / 3 - 1);
    expect(await extensions()).toBe(1);
    await keeper.keep(t0 + max / 3);
    expect(await extensions()).toBe(2);
    // The last extension asks only for what is left to deadline + grace, and none follows.
    const before = Date.now();
    await keeper.keep(deadlineAt - 100_000);
    const asked = ((await readSimulatedState(dir, sandbox.id))?.endAt ?? 0) - before;
    expect(asked).toBeGreaterThanOrEqual(100_000 + SANDBOX_GRACE_MS);
    expect(asked).toBeLessThan(100_000 + SANDBOX_GRACE_MS + 2_000);
    await keeper.keep(deadlineAt);
    expect(await extensions()).toBe(3);
    expect(keeper.lapseCause(t0, deadlineAt)).toBe("");
    expect(keeper.lapseCause(t0, deadlineAt + SANDBOX_GRACE_MS)).toMatch(/^: its provider timeout lapsed at /);
    // A watch that never extended: the cause is named once the maximum has passed since `since`.
    const fresh = new LifetimeKeeper(provider, "sim-0000000000000000", deadlineAt, logger);
    expect(fresh.lapseCause(t0, t0 + 1_000)).toBe("");
    expect(fresh.lapseCause(t0, t0 + max)).toMatch(/lapsed, nothing having extended it/);
    // No cap, nothing to do or to say.
    const uncapped = new LifetimeKeeper(new SimulatedSandboxProvider({ dir }, logger), sandbox.id, deadlineAt, logger);
    await uncapped.keep(t0);
    expect(await extensions()).toBe(3);
    expect(uncapped.lapseCause(t0, deadlineAt * 2)).toBe("");
  });
});
