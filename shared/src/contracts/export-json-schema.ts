import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { jsonSchemas } from "@session-fleet/client/contracts";

/** `npm run schemas`: writes one JSON Schema file per message into the folder given (docs/schemas). */
const dir = resolve(process.argv[2] ?? "docs/schemas");
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(jsonSchemas())) {
  writeFileSync(join(dir, `${name}.schema.json`), `${JSON.stringify(schema, null, 2)}\n`);
}
process.stdout.write(`wrote ${Object.keys(jsonSchemas()).length} schemas to ${dir}\n`);
