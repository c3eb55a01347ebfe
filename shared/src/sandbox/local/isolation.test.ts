import { describe, expect, it } from "vitest";
import { hostView, isolatedArgv, isolationProblem, type HostView } from "./isolation.js";
import { layoutOf } from "./registry.js";

describe("isolation", () => {
  const tools = { bwrap: "/usr/bin/bwrap", setpriv: "/usr/bin/setpriv", socat: "/usr/bin/socat" };

  it("names what is missing when bubblewrap isolation cannot work", () => {
    expect(isolationProblem({ ...tools, bwrap: undefined }, "/tmp", 3_000_000)).toMatch(/bubblewrap is not installed/);
    expect(isolationProblem({ ...tools, setpriv: undefined }, "/tmp", 3_000_000)).toMatch(/setpriv/);
    expect(isolationProblem({ ...tools, socat: undefined }, "/tmp", 3_000_000)).toMatch(/socat/);
    expect(isolationProblem({ ...tools, bwrap: "/nonexistent/bwrap" }, "/tmp", 3_000_000)).toMatch(
      /bubblewrap cannot|root/,
    );
  });

  it("runs the command as its own user, in new namespaces, under the filter, seeing only the host view and its own folders", () => {
    const layout = layoutOf("/srv/sbx/lsb-0123456789abcdef");
    const view: HostView = [
      { kind: "ro", path: "/usr" },
      { kind: "symlink", target: "usr/bin", path: "/bin" },
    ];
    const binds = { workspace: layout.workspace, home: layout.home, tmp: layout.tmp, bridge: layout.bridge };
    const base = { tools, view, rootDir: "/srv/sbx", binds, uid: 3_000_123, seccompFd: 3, cwd: layout.workspace };
    const argv = isolatedArgv({ ...base, command: "node", args: ["-v"] });
    expect(argv.slice(0, 8)).toEqual([
      "/usr/bin/setpriv",
      "--reuid=3000123",
      "--regid=3000123",
      "--clear-groups",
      "--inh-caps=-all",
      "--no-new-privs",
      "--",
      "/usr/bin/bwrap",
    ]);
    expect(argv.slice(8, 18)).toEqual([
      "--ro-bind",
      "/usr",
      "/usr",
      "--symlink",
      "usr/bin",
      "/bin",
      "--tmpfs",
      "/tmp",
      "--tmpfs",
      "/srv/sbx",
    ]);
    expect(argv).not.toContain("/");
    for (const dir of [layout.workspace, layout.home, layout.tmp])
      expect(argv.join(" ")).toContain(`--bind ${dir} ${dir}`);
    expect(argv.join(" ")).toContain(`--bind ${layout.bridge} /run/fleet`);
    expect(argv).not.toContain(layout.logs);
    for (const flag of [
      "--unshare-user",
      "--disable-userns",
      "--unshare-pid",
      "--unshare-net",
      "--unshare-ipc",
      "--unshare-uts",
    ])
      expect(argv).toContain(flag);
    expect(argv.join(" ")).toContain("--cap-drop ALL");
    expect(argv.join(" ")).toContain("--seccomp 3");
    expect(argv.slice(-3)).toEqual(["--", "node", "-v"]);
    // A binary outside the view brings its own package folder, read-only.
    const opencode = isolatedArgv({ ...base, command: "/app/node_modules/oc-linux/bin/oc", args: [] });
    expect(opencode.join(" ")).toContain(
      "--tmpfs /srv/sbx --ro-bind /app/node_modules/oc-linux /app/node_modules/oc-linux",
    );
    const loose = isolatedArgv({ ...base, command: "/tmp/tools-1/agent", args: [] });
    expect(loose.join(" ")).toContain("--tmpfs /srv/sbx --ro-bind /tmp/tools-1 /tmp/tools-1");
    // A readable folder under /tmp (a checkout kept there) is mounted after the private /tmp, and the
    // sandboxes' root is hidden after it, even when that folder holds the root.
    const tmpView: HostView = [...view, { kind: "ro", path: "/tmp/checkout/tools" }, { kind: "ro", path: "/tmp/sbx" }];
    const underTmp = isolatedArgv({
      ...base,
      view: tmpView,
      rootDir: "/tmp/sbx/roots",
      command: "node",
      args: [],
    }).join(" ");
    expect(underTmp).toContain(
      "--tmpfs /tmp --ro-bind /tmp/checkout/tools /tmp/checkout/tools --ro-bind /tmp/sbx /tmp/sbx --tmpfs /tmp/sbx/roots",
    );
  });

  it("builds the host view from the system folders, PATH and extra readable folders, never /", () => {
    const view = hostView("/usr/bin:relative:/nonexistent", ["/proc/self/.."]);
    expect(view.some((v) => v.path === "/usr")).toBe(true);
    expect(
      view.some(
        (v) =>
          v.path === "/usr/bin" ||
          v.path === "/" ||
          v.path === "/home" ||
          v.path === "relative" ||
          v.path === "/nonexistent",
      ),
    ).toBe(false);
    expect(view.find((v) => v.path === "/proc")).toEqual({ kind: "ro", path: "/proc" });
  });
});
