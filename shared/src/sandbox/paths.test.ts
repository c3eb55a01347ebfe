import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import { checkEnvs, joinPosix, relativeDirSegments, relativeSegments } from "./paths.js";

function refusal(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FleetError);
    return err as FleetError;
  }
  throw new Error("expected a refusal");
}

describe("relativeSegments", () => {
  it("accepts relative paths and normalises . and empty segments", () => {
    expect(relativeSegments("a/b/c.txt")).toEqual(["a", "b", "c.txt"]);
    expect(relativeSegments("./a//b/./c")).toEqual(["a", "b", "c"]);
    expect(relativeSegments("..hidden/x..y")).toEqual(["..hidden", "x..y"]);
    expect(relativeSegments("with space/ünï")).toEqual(["with space", "ünï"]);
  });

  it.each(["../x", "a/../../x", "a/..", "..", "/etc/passwd", "/", "", ".", "./", "a/\0b", "x".repeat(5000)])(
    "refuses %j as bad input",
    (p) => {
      const err = refusal(() => relativeSegments(p));
      expect(err.code).toBe("sandbox");
      expect(err.retryable).toBe(false);
    },
  );

  it("treats an empty working folder as the base", () => {
    expect(relativeDirSegments(undefined)).toEqual([]);
    expect(relativeDirSegments(".")).toEqual([]);
    expect(relativeDirSegments("src/app")).toEqual(["src", "app"]);
    expect(() => relativeDirSegments("../up")).toThrow(FleetError);
  });

  it("joins below a POSIX base", () => {
    expect(joinPosix("/home/user/workspace", ["a", "b"])).toBe("/home/user/workspace/a/b");
    expect(joinPosix("/home/user/", [])).toBe("/home/user");
  });
});

describe("checkEnvs", () => {
  it("passes valid variables through", () => {
    expect(checkEnvs({ A: "1", _b2: "x y" }, "envs")).toEqual({ A: "1", _b2: "x y" });
    expect(checkEnvs(undefined, "envs")).toEqual({});
  });

  it.each<Record<string, string>>([{ "A=B": "1" }, { "1A": "x" }, { "": "x" }, { A: "nul\0" }])(
    "refuses %j",
    (envs) => {
      expect(refusal(() => checkEnvs(envs, "envs")).retryable).toBe(false);
    },
  );
});
