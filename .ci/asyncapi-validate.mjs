// Validates an AsyncAPI document with the official parser (@asyncapi/parser
// 3.x): `node .ci/asyncapi-validate.mjs FILE`. Prints every diagnostic and
// exits 1 if any has severity error (0).
//
// The parser is loaded with require so that NODE_PATH finds it in a
// node_modules folder outside this repository (ES module imports ignore
// NODE_PATH).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Parser } = require('@asyncapi/parser');

const file = process.argv[2];
if (!file) {
  console.error('usage: node asyncapi-validate.mjs FILE');
  process.exit(2);
}

const text = await readFile(file, 'utf8');
const diagnostics = await new Parser().validate(text);
const names = ['error', 'warning', 'information', 'hint'];
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === 0) errors++;
  const path = Array.isArray(d.path) && d.path.length ? d.path.join('/') : '(document)';
  console.log(`${names[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${path}`);
}
if (errors > 0) {
  console.error(`${file}: ${errors} error(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${JSON.parse(text).asyncapi} (${diagnostics.length} diagnostics, none an error)`);
