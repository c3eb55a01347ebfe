import { errorMessage, SANDBOX_GRACE_MS, type SandboxProvider } from "@fleet/shared";
import type { Logger } from "@fleet/shared/log";

/** Clocks differ a little between the fleet and the provider. */
const LAPSE_SLACK_MS = 2_000;

/**
 * Keeps a running session's sandbox alive on a provider that caps a sandbox's timeout (E2B: an hour
 * or a day): the poller that watches the session sets the timeout again whenever a third of the
 * provider's maximum has passed since the last time, so at least two thirds of it are always left,
 * and never past the session's deadline + SANDBOX_GRACE_MS. The poller, not the watchdog: it already
 * holds each running session (one owner, re-attached after a crash, when it extends at once) and
 * ticks on it, while the watchdog would need every sandbox's end stored and a sweep over all of them.
 */
export class LifetimeKeeper {
  private extendedAt: number | undefined;
  private endsAt: number | undefined;

  constructor(
    private readonly provider: Pick<SandboxProvider, "maxTimeoutMs" | "setTimeout">,
    private readonly sandboxId: string,
    private readonly deadlineAt: number,
    private readonly log: Logger,
  ) {}

  /** Extends the timeout when it is due; failures are logged and tried again at the next tick. */
  async keep(now = Date.now()): Promise<void> {
    const max = this.provider.maxTimeoutMs;
    if (max === undefined) return;
    const target = this.deadlineAt + SANDBOX_GRACE_MS;
    if (this.endsAt !== undefined && this.endsAt >= target) return;
    if (this.extendedAt !== undefined && now - this.extendedAt < max / 3) return;
    const timeoutMs = Math.min(max, target - now);
    if (timeoutMs <= 0) return;
    try {
      if (await this.provider.setTimeout(this.sandboxId, timeoutMs)) {
        this.extendedAt = now;
        this.endsAt = now + timeoutMs;
        this.log.debug({ endsAt: new Date(this.endsAt).toISOString() }, "sandbox timeout extended");
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "could not extend the sandbox's timeout; trying again");
    }
  }

  /**
   * Why the sandbox may have ended, for a session that lost it: its timeout, when that had passed
   * (`since`: when the sandbox was made, for a watch that never extended it). Empty otherwise.
   */
  lapseCause(since: number | undefined, now = Date.now()): string {
    const max = this.provider.maxTimeoutMs;
    if (max === undefined) return "";
    if (this.endsAt !== undefined)
      return now >= this.endsAt - LAPSE_SLACK_MS
        ? `: its provider timeout lapsed at ${new Date(this.endsAt).toISOString()} (last set at ${new Date(this.extendedAt ?? 0).toISOString()}; the provider allows ${max} ms at a time)`
        : "";
    return since !== undefined && now >= since + max - LAPSE_SLACK_MS
      ? `: its provider timeout (${max} ms at a time) lapsed, nothing having extended it since ${new Date(since).toISOString()}`
      : "";
  }
}
