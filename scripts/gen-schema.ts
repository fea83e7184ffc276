// Writes docs/protocol.schema.json from src/protocol/ (run through `npm run gen:schema`).
import { writeFileSync } from "node:fs";
import { protocolSchemaText } from "../src/protocol/schema-document.js";

const target = new URL("../../docs/protocol.schema.json", import.meta.url);
writeFileSync(target, protocolSchemaText());
process.stdout.write(`wrote ${target.pathname}\n`);
