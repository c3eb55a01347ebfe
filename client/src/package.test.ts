import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The client is published on its own: it may import only its own files and its declared packages. */
describe("the client package stands alone", () => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    exports: Record<string, { types: string; default: string }>;
  };
  const runtime = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]);
  // The examples also use what a user brings along (a NATS transport), from devDependencies.
  const forExamples = new Set([...runtime, ...Object.keys(pkg.devDependencies)]);

  it("imports nothing of the fleet's internals, and only packages it declares", () => {
    const files = [...sources(join(root, "src")), ...sources(join(root, "examples"))].filter(
      (f) => !f.endsWith(".test.ts"),
    );
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      for (const [, spec] of readFileSync(file, "utf8").matchAll(/from "([^"]+)"/g)) {
        const target = spec as string;
        if (target.startsWith(".")) {
          expect(join(file, "..", target).startsWith(root), `${file} imports ${target}`).toBe(true);
          continue;
        }
        if (target.startsWith("node:") || target.startsWith("@session-fleet/client")) continue;
        const name = target.startsWith("@")
          ? target.split("/").slice(0, 2).join("/")
          : (target.split("/")[0] as string);
        const allowed = file.includes("/examples/") ? forExamples : runtime;
        expect(allowed.has(name), `${file} imports ${target}, which package.json does not declare`).toBe(true);
      }
    }
  });

  it("exports its entry points with their types", () => {
    expect(Object.keys(pkg.exports)).toEqual([".", "./contracts"]);
    for (const entry of Object.values(pkg.exports)) {
      expect(entry.types).toMatch(/^\.\/dist\/.*\.d\.ts$/);
      expect(entry.default).toMatch(/^\.\/dist\/.*\.js$/);
    }
  });
});
