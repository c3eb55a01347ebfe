import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

/**
 * What services ship stays apart from the development tooling (@fleet/devtools): no source file of
 * the library or a service imports it, except the simulated provider loaded by name at run time, and
 * no service's production dependencies, direct or through others, include it or testcontainers.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOOLING = "@fleet/devtools";
const DEVTOOLS_DIR = join(ROOT, "devtools");
/** The one file that names the tooling: it imports the simulated provider by name (SANDBOX_PROVIDER=simulated). */
const NAMED_LOAD = "shared/src/service/simulated.ts";
const FORBIDDEN = [TOOLING, "testcontainers"];
const run = promisify(execFile);

const SERVICES = readdirSync(join(ROOT, "services")).map((name) => `services/${name}`);
const SHIPPED = ["shared", ...SERVICES];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|cts|js|mjs|cjs)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** Module specifiers of static imports and re-exports, dynamic imports and requires with a literal. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\b(?:import|require)\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(m[1] as string);
  return found;
}

/** Imports of the tooling in a source file: by package name, or by a relative path into its folder. */
function toolingImports(file: string, text: string): string[] {
  return specifiers(text).filter(
    (s) =>
      s === TOOLING ||
      s.startsWith(`${TOOLING}/`) ||
      (s.startsWith(".") && !relative(DEVTOOLS_DIR, resolve(dirname(file), s)).startsWith("..")),
  );
}

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  resolved?: string;
  link?: boolean;
}

/** Every package a workspace needs at run time, as npm installs them (package-lock.json), by name. */
function productionClosure(lock: Record<string, LockEntry>, workspace: string): Set<string> {
  const names = new Set<string>();
  const seen = new Set<string>();
  const locate = (from: string, name: string): string | undefined => {
    for (
      let dir = from;
      ;
      dir = dir.includes("/node_modules/") ? dir.slice(0, dir.lastIndexOf("/node_modules/")) : ""
    ) {
      const key = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
      if (lock[key]) return key;
      if (!dir) return undefined;
    }
  };
  const visit = (key: string): void => {
    if (seen.has(key)) return;
    seen.add(key);
    const entry = lock[key];
    if (!entry) return;
    if (entry.link && entry.resolved) {
      visit(entry.resolved);
      return;
    }
    const deps = { ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies };
    for (const name of Object.keys(deps)) {
      names.add(name);
      const at = locate(key, name);
      if (at) visit(at);
    }
  };
  visit(workspace);
  return names;
}

describe("house rules: services never depend on the development tooling", () => {
  it("finds no import of it in shared/src or services/*/src but the named load of the simulated provider", () => {
    const offenders: string[] = [];
    const naming: string[] = [];
    for (const dir of SHIPPED.map((p) => join(ROOT, p, "src"))) {
      for (const file of sourceFiles(dir)) {
        const text = readFileSync(file, "utf8");
        const rel = relative(ROOT, file);
        for (const s of toolingImports(file, text)) offenders.push(`${rel}: ${s}`);
        if (text.includes(TOOLING)) naming.push(rel);
      }
    }
    expect(offenders).toEqual([]);
    expect(naming).toEqual([NAMED_LOAD]);
  });

  it("recognises such an import, static, dynamic, re-exported or by relative path", () => {
    const file = join(ROOT, "shared/src/service/x.ts");
    expect(toolingImports(file, `import { startInfra } from "@fleet/devtools/infra";`)).toEqual([
      "@fleet/devtools/infra",
    ]);
    expect(toolingImports(file, `const m = await import("@fleet/devtools/simulated");`)).toEqual([
      "@fleet/devtools/simulated",
    ]);
    expect(toolingImports(file, `export {\n  startScriptedModel,\n} from "@fleet/devtools/model";`)).toEqual([
      "@fleet/devtools/model",
    ]);
    expect(toolingImports(file, `import type { Infra } from "../../../devtools/src/infra/index.js";`)).toEqual([
      "../../../devtools/src/infra/index.js",
    ]);
    expect(toolingImports(file, `import { FleetError } from "../errors/index.js";\nimport { z } from "zod";`)).toEqual(
      [],
    );
  });

  it("keeps testcontainers and the tooling out of the library's and every service's production dependencies", () => {
    const lock = (
      JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> }
    ).packages;
    for (const workspace of SHIPPED) {
      const manifest = JSON.parse(readFileSync(join(ROOT, workspace, "package.json"), "utf8")) as LockEntry;
      const direct = Object.keys({
        ...manifest.dependencies,
        ...manifest.optionalDependencies,
        ...manifest.peerDependencies,
      });
      expect({ workspace, forbidden: direct.filter((d) => FORBIDDEN.includes(d)) }).toEqual({
        workspace,
        forbidden: [],
      });
      const closure = productionClosure(lock, workspace);
      expect(closure.has("@fleet/shared") || workspace === "shared").toBe(true);
      expect({ workspace, forbidden: FORBIDDEN.filter((d) => closure.has(d)) }).toEqual({ workspace, forbidden: [] });
    }
  });

  it("builds the library and the services without the tooling (no project reference to it)", () => {
    for (const workspace of SHIPPED) {
      const tsconfig = JSON.parse(readFileSync(join(ROOT, workspace, "tsconfig.json"), "utf8")) as {
        references?: Array<{ path: string }>;
      };
      const refs = (tsconfig.references ?? []).map((r) => resolve(ROOT, workspace, r.path));
      expect({ workspace, refs: refs.filter((r) => r === DEVTOOLS_DIR) }).toEqual({ workspace, refs: [] });
    }
  });

  it("a service installed without the tooling refuses SANDBOX_PROVIDER=simulated, saying why", async () => {
    // An install holding every package but the tooling; --preserve-symlinks keeps resolution inside it.
    const dir = mkdtempSync(join(tmpdir(), "fleet-no-devtools-"));
    try {
      const modules = join(dir, "node_modules");
      mkdirSync(join(modules, "@fleet"), { recursive: true });
      for (const entry of readdirSync(join(ROOT, "node_modules"))) {
        if (entry !== "@fleet") symlinkSync(join(ROOT, "node_modules", entry), join(modules, entry));
      }
      symlinkSync(join(ROOT, "shared"), join(modules, "@fleet", "shared"));
      writeFileSync(
        join(dir, "probe.mjs"),
        [
          `import { createLogger, loadConfig, sandboxEnv } from "@fleet/shared";`,
          `import { createSandboxProvider } from "@fleet/shared/service";`,
          `const env = loadConfig(sandboxEnv, { SANDBOX_PROVIDER: "simulated", FLEET_SIM_DIR: ${JSON.stringify(join(dir, "sim"))} });`,
          `try { await createSandboxProvider(env, createLogger({ name: "probe", level: "silent" })); console.log(JSON.stringify({ loaded: true })); }`,
          `catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }`,
        ].join("\n"),
      );
      const { stdout } = await run(
        process.execPath,
        ["--preserve-symlinks", "--preserve-symlinks-main", join(dir, "probe.mjs")],
        { cwd: dir, timeout: 20_000 },
      );
      expect(JSON.parse(stdout.trim())).toEqual({
        code: "config",
        message:
          "SANDBOX_PROVIDER=simulated needs the development tooling (@fleet/devtools); it is for benchmarks only",
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
