import { readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ProviderQuotaError } from "@fleet/shared/sandbox";
import { isMissing } from "./state.js";

/** A slot whose sandbox is not in live/ this long after its create began was left by a create that died. */
const ORPHAN_SLOT_MS = 5_000;

/**
 * The concurrent-sandbox quota of the simulated provider account (FLEET_SIM_QUOTA), as E2B counts
 * a team's running sandboxes: slot files `quota/<n>` (n < limit), each naming its sandbox, taken by
 * an exclusive create, so every fleet process on the host shares one count and none can take a
 * sixth of five. A create takes a slot before its sandbox exists; a kill or a lapse gives it back
 * after the sandbox is gone: the live sandboxes never outnumber the limit.
 */
export class SimulatedQuota {
  private readonly folder: string;

  constructor(
    dir: string,
    readonly limit: number,
    private readonly retryAfterMs: number,
    /** Whether a sandbox is alive (its journal in live/). */
    private readonly alive: (id: string) => Promise<boolean>,
    /** How long a create may take between taking its slot and recording its sandbox. */
    private readonly createMs = 0,
  ) {
    this.folder = join(dir, "quota");
  }

  /** Takes a slot for `id`, or answers like E2B at its limit: 429 with Retry-After. */
  async take(id: string): Promise<void> {
    for (let round = 0; round < 2; round++) {
      for (let n = 0; n < this.limit; n++) {
        try {
          await writeFile(join(this.folder, String(n)), id, { flag: "wx" });
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
      }
      if (round === 0 && !(await this.sweep())) break;
    }
    throw new ProviderQuotaError(
      `simulated provider: 429 the account's limit of ${this.limit} concurrent sandboxes is reached`,
      { kind: "concurrency", retryAfterMs: this.retryAfterMs, limit: this.limit },
    );
  }

  /** Gives back the slot `id` holds, if any. */
  async give(id: string): Promise<void> {
    for (const [file, holder] of await this.slots()) if (holder === id) await unlink(file).catch(ignoreMissing);
  }

  /** Sandboxes counted against the quota now. */
  async used(): Promise<number> {
    return (await this.slots()).length;
  }

  /** Frees slots whose sandbox is gone (lapsed, or its create died): true when it freed any. */
  private async sweep(): Promise<boolean> {
    let freed = false;
    for (const [file, holder] of await this.slots()) {
      if (await this.alive(holder)) continue;
      const age = await stat(file).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age < ORPHAN_SLOT_MS + this.createMs) continue;
      await unlink(file).catch(ignoreMissing);
      freed = true;
    }
    return freed;
  }

  private async slots(): Promise<Array<[string, string]>> {
    const names = await readdir(this.folder).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    const out: Array<[string, string]> = [];
    for (const name of names.filter((n) => /^\d+$/.test(n))) {
      const file = join(this.folder, name);
      const holder = await readFile(file, "utf8").catch(ignoreMissing);
      if (holder) out.push([file, holder]);
    }
    return out;
  }
}

function ignoreMissing(err: unknown): undefined {
  if (isMissing(err)) return undefined;
  throw err;
}
