import { describe, expect, it } from "vitest";
import { EVENTS } from "./catalog.js";
import {
  ACTIVE_STATUSES,
  LIFECYCLE,
  SESSION_PHASES,
  SESSION_STATUSES,
  TERMINAL_STATUSES,
  isTerminal,
} from "./lifecycle.js";

describe("the lifecycle table", () => {
  it("ends every active status once: terminal statuses are entered from every active one and left to none", () => {
    for (const s of TERMINAL_STATUSES) expect([...LIFECYCLE[s].from].sort()).toEqual([...ACTIVE_STATUSES].sort());
    for (const s of SESSION_STATUSES)
      for (const from of LIFECYCLE[s].from) expect(isTerminal(from), `${s} from ${from}`).toBe(false);
    expect(SESSION_STATUSES.filter(isTerminal)).toEqual([...TERMINAL_STATUSES]);
  });

  it("gives every phase to one active status, and every event it names is a catalog subject", () => {
    const owned = SESSION_STATUSES.flatMap((s) => LIFECYCLE[s].phases);
    expect([...owned].sort()).toEqual([...SESSION_PHASES].sort());
    for (const s of SESSION_STATUSES) {
      const spec: { event?: keyof typeof EVENTS; writers: object } = LIFECYCLE[s];
      if (spec.event) expect(EVENTS[spec.event].subject).toBe(`session.${spec.event}`);
      expect(Object.keys(spec.writers).length, s).toBeGreaterThan(0);
    }
  });
});
