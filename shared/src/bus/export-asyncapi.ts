import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { asyncApiDocument } from "./asyncapi.js";

/** `npm run schemas`: writes the bus's AsyncAPI document to the file given (docs/asyncapi.json). */
const file = resolve(process.argv[2] ?? "docs/asyncapi.json");
mkdirSync(dirname(file), { recursive: true });
writeFileSync(file, `${JSON.stringify(asyncApiDocument(), null, 2)}\n`);
process.stdout.write(`wrote the AsyncAPI document to ${file}\n`);
