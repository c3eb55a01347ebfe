import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { jsonSchemas } from "./index.js";

const docs = join(import.meta.dirname, "../../../docs/schemas");

describe("docs/schemas", () => {
  it("holds exactly what `npm run schemas` writes from the catalog today", () => {
    const schemas = jsonSchemas();
    expect(readdirSync(docs).sort()).toEqual(
      Object.keys(schemas)
        .map((n) => `${n}.schema.json`)
        .sort(),
    );
    for (const [name, schema] of Object.entries(schemas)) {
      const written = JSON.parse(readFileSync(join(docs, `${name}.schema.json`), "utf8")) as unknown;
      expect(written, `${name}: run npm run schemas`).toEqual(schema);
    }
  });
});
