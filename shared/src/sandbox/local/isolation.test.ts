import { describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { chooseIsolation, isolatedArgv } from "./isolation.js";
import { layoutOf } from "./registry.js";

describe("isolation", () => {
  it("falls back to none under auto when bwrap is missing or broken, and refuses when it was required", () => {
    expect(chooseIsolation("auto", undefined)).toBe("none");
    expect(chooseIsolation("auto", "/nonexistent/bwrap")).toBe("none");
    expect(chooseIsolation("none", "/usr/bin/bwrap")).toBe("none");
    expect(() => chooseIsolation("bubblewrap", undefined)).toThrow(FleetError);
    expect(() => chooseIsolation("bubblewrap", "/nonexistent/bwrap")).toThrow(/does not work/);
  });

  it("runs plain without isolation, and under bubblewrap binds only this sandbox's folders back over rootDir", () => {
    const layout = layoutOf("/srv/sbx/lsb-0123456789abcdef");
    expect(isolatedArgv("none", "/usr/bin/bwrap", "/srv/sbx", layout, layout.workspace, "node", ["-v"])).toEqual(["node", "-v"]);
    const argv = isolatedArgv("bubblewrap", "/usr/bin/bwrap", "/srv/sbx", layout, layout.workspace, "node", ["-v"]);
    expect(argv.slice(0, 6)).toEqual(["/usr/bin/bwrap", "--ro-bind", "/", "/", "--tmpfs", "/srv/sbx"]);
    for (const dir of [layout.workspace, layout.home, layout.tmp]) expect(argv.join(" ")).toContain(`--bind ${dir} ${dir}`);
    expect(argv).not.toContain(layout.logs);
    expect(argv).toContain("--unshare-pid");
    expect(argv).not.toContain("--unshare-net");
    expect(argv.slice(-3)).toEqual(["--", "node", "-v"]);
  });
});
