import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetHttpClient } from "../client/src/index.js";
import { useTestFleet } from "./support/fleet-fixture.js";

/** Debian's chromium (./fleet test installs it). */
function chromiumPath(): string {
  return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim();
}

const shots = mkdtempSync(join(tmpdir(), "fleet-dashboard-"));
/** Set to a folder (docs/dashboard) to keep the screenshots the test takes there. */
const keep = process.env.FLEET_SCREENSHOTS_DIR;

/**
 * The dashboard in headless Chromium against the whole fleet as processes (simulated sandboxes and
 * agents: sessions of 15 steps 250 ms apart, so a session runs long enough to watch and to cancel).
 */
describe("the dashboard in a real browser", () => {
  const fleet = useTestFleet({
    prefix: "dash",
    simulated: true,
    env: { FLEET_SIM_EVENTS: "15", FLEET_SIM_EVENT_MS: "250", WATCHDOG_INTERVAL_MS: "300" },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
  });
  let browser: Browser;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    rmSync(shots, { recursive: true, force: true });
  });

  async function open(path = "", viewport = { width: 1200, height: 900 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("console", (m) => m.type() === "error" && !/status of 40[13]/.test(m.text()) && problems.push(m.text()));
    await page.goto(`${fleet.apiUrl}/dashboard${path}`);
    await page.fill("#signin input[name=key]", fleet.apiKey);
    await page.click("#signin button");
    Object.assign(page, { problems });
    return page;
  }
  const problemsOf = (page: Page) => (page as Page & { problems: string[] }).problems;

  async function shoot(page: Page, name: string): Promise<void> {
    const file = join(shots, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(5_000);
    if (keep) {
      mkdirSync(keep, { recursive: true });
      copyFileSync(file, join(keep, `${name}.png`));
    }
  }

  it("a wrong key gets a clear error and the sign-in form again", async () => {
    const page = await browser.newPage();
    await page.goto(`${fleet.apiUrl}/dashboard`);
    await page.fill("#signin input[name=key]", "fk_0000000000000000_wrong");
    await page.click("#signin button");
    await expect
      .poll(() => page.locator("[role=alert]").textContent(), { timeout: 10_000 })
      .toMatch(/Your API key was refused \(401 unauthorized: .+\)/);
    expect(await page.locator("#signin").count()).toBe(1);
    // The key is kept for the tab only: a new tab of the same browser asks again.
    const other = await (await browser.newContext()).newPage();
    await other.goto(`${fleet.apiUrl}/dashboard`);
    expect(await other.locator("#signin").count()).toBe(1);
    await page.close();
  });

  it("lists a session submitted here, streams its log while it runs, and shows its setup and result", async () => {
    const id = await fleet.submit({ projectId: "p-dash", prompt: "watch me work" });
    const page = await open("#/?project=p-dash");
    await page.locator(`tr[data-id="${id}"] a`).click({ timeout: 20_000 });
    // Lines arrive while the session still runs (the summary is read again every 2 s, so it may
    // show the page's first read, pending, for up to that long after the lines).
    await expect.poll(() => page.locator("#log .seq").count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    await expect
      .poll(() => page.locator("#summary [data-status]").getAttribute("data-status"), { timeout: 5_000 })
      .toBe("running");
    await shoot(page, "session-running");
    await expect
      .poll(() => page.locator("#summary [data-status]").getAttribute("data-status"), { timeout: 30_000 })
      .toBe("completed");
    const lines = await new FleetHttpClient({ baseUrl: fleet.apiUrl, apiKey: fleet.apiKey }).logs(id);
    await expect.poll(() => page.locator("#log .seq").count(), { timeout: 10_000 }).toBe(lines.length);
    expect(await page.locator("#setup-chart .bar").count()).toBeGreaterThan(2);
    await expect.poll(() => page.locator("#result li").count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(15);
    await shoot(page, "session-completed");

    await page.goto(`${fleet.apiUrl}/dashboard#/?project=p-dash&status=completed`);
    await expect.poll(() => page.locator(`tr[data-id="${id}"] [data-status]`).textContent()).toBe("completed");
    await shoot(page, "sessions");
    expect(problemsOf(page).join("\n")).toBe("");
    await page.close();
  }, 90_000);

  it("cancels a running session from its page", async () => {
    const id = await fleet.submit({ projectId: "p-dash", prompt: "cancel me from the page" });
    const page = await open(`#/session/${id}`);
    await page.locator("#cancel").click({ timeout: 30_000 });
    await expect
      .poll(() => page.locator("#summary [data-status]").getAttribute("data-status"), { timeout: 30_000 })
      .toBe("cancelled");
    expect((await fleet.ended(id)).status).toBe("cancelled");
    await page.close();
  }, 60_000);

  it("shows the fleet: what runs and waits per project, and is readable on a phone", async () => {
    const id = await fleet.submit({ projectId: "p-fleet", prompt: "seen on the fleet page" });
    const page = await open("#/fleet");
    await expect.poll(() => page.locator("#projects tbody").textContent(), { timeout: 20_000 }).toContain("p-fleet");
    await shoot(page, "fleet");
    await fleet.ended(id, 60_000);
    const phone = await open("#/?project=p-dash", { width: 390, height: 844 });
    await expect.poll(() => phone.locator("#sessions tbody tr").count(), { timeout: 20_000 }).toBeGreaterThan(1);
    // Nothing wider than the screen: the optional columns fold away.
    expect(await phone.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await shoot(phone, "phone");
    expect([...problemsOf(page), ...problemsOf(phone)]).toEqual([]);
  }, 90_000);
});
