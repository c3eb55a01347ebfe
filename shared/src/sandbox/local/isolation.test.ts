import { describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { chooseIsolation, hostView, isolatedArgv, type HostView } from "./isolation.js";
import { layoutOf } from "./registry.js";

describe("isolation", () => {
  it("falls back to none under auto when bwrap is missing or broken, and refuses when it was required", () => {
    expect(chooseIsolation("auto", undefined)).toBe("none");
    expect(chooseIsolation("auto", "/nonexistent/bwrap")).toBe("none");
    expect(chooseIsolation("none", "/usr/bin/bwrap")).toBe("none");
    expect(() => chooseIsolation("bubblewrap", undefined)).toThrow(FleetError);
    expect(() => chooseIsolation("bubblewrap", "/nonexistent/bwrap")).toThrow(/does not work/);
  });

  it("runs plain without isolation, and under bubblewrap mounts only the host view, a private /tmp and this sandbox's folders", () => {
    const layout = layoutOf("/srv/sbx/lsb-0123456789abcdef");
    const view: HostView = [
      { kind: "ro", path: "/usr" },
      { kind: "symlink", target: "usr/bin", path: "/bin" },
    ];
    expect(isolatedArgv("none", "/usr/bin/bwrap", view, "/srv/sbx", layout, layout.workspace, "node", ["-v"])).toEqual(["node", "-v"]);
    const argv = isolatedArgv("bubblewrap", "/usr/bin/bwrap", view, "/srv/sbx", layout, layout.workspace, "node", ["-v"]);
    expect(argv.slice(0, 11)).toEqual(["/usr/bin/bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--tmpfs", "/tmp", "--tmpfs", "/srv/sbx"]);
    expect(argv).not.toContain("/");
    for (const dir of [layout.workspace, layout.home, layout.tmp]) expect(argv.join(" ")).toContain(`--bind ${dir} ${dir}`);
    expect(argv).not.toContain(layout.logs);
    expect(argv).toContain("--unshare-pid");
    expect(argv).not.toContain("--unshare-net");
    expect(argv.slice(-3)).toEqual(["--", "node", "-v"]);
    // A binary outside the view brings its own package folder, read-only.
    const opencode = isolatedArgv("bubblewrap", "/usr/bin/bwrap", view, "/srv/sbx", layout, layout.workspace, "/app/node_modules/oc-linux/bin/oc", []);
    expect(opencode.join(" ")).toContain("--tmpfs /srv/sbx --ro-bind /app/node_modules/oc-linux /app/node_modules/oc-linux");
    const loose = isolatedArgv("bubblewrap", "/usr/bin/bwrap", view, "/srv/sbx", layout, layout.workspace, "/tmp/tools-1/agent", []);
    expect(loose.join(" ")).toContain("--tmpfs /srv/sbx --ro-bind /tmp/tools-1 /tmp/tools-1");
  });

  it("builds the host view from the system folders, PATH and extra readable folders, never /", () => {
    const view = hostView("/usr/bin:relative:/nonexistent", ["/proc/self/.."]);
    expect(view.some((v) => v.path === "/usr")).toBe(true);
    expect(view.some((v) => v.path === "/usr/bin" || v.path === "/" || v.path === "/home" || v.path === "relative" || v.path === "/nonexistent")).toBe(false);
    expect(view.find((v) => v.path === "/proc")).toEqual({ kind: "ro", path: "/proc" });
  });
});
