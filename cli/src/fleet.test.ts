import { describe, expect, it } from "vitest";
import { upSpawnerEnv } from "./fleet.js";

describe("./fleet up --pool", () => {
  it("gives the spawner a warm pool of N ready agents, and none without the option", () => {
    expect(upSpawnerEnv(2)).toEqual({ FLEET_POOL_MAX: "2", FLEET_POOL_MIN: "2" });
    expect(upSpawnerEnv(undefined)).toEqual({});
  });
  it("refuses a size that is not a whole number from 1 to 1000, naming it", () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 1001])
      expect(() => upSpawnerEnv(bad), String(bad)).toThrow(/--pool must be a whole number/);
  });
});
