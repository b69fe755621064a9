#!/usr/bin/env node
// Precompiles the spec validators (ajv's standalone code) into dist/src/spec/validators.cjs, so
// that `bnx plan` and `bnx run` do not compile them at every start (about 0.2 s). Run after tsc:
// it reads the compiled schemas. The file records a fingerprint of the schemas it was made from;
// src/spec/load.ts uses it only when that fingerprint matches the schemas it has, and compiles them
// itself otherwise (a `tsc` without this step never leaves a stale validator in use).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import standalone from 'ajv/dist/standalone/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const specDir = path.join(root, 'dist', 'src', 'spec');
const { VALIDATOR_OPTIONS, schemaFingerprint, VALIDATED_SCHEMAS } = await import(pathToFileURL(path.join(specDir, 'validators.js')).href);
const ajv = new Ajv({ ...VALIDATOR_OPTIONS, code: { source: true } });
for (const [name, schema] of Object.entries(VALIDATED_SCHEMAS)) ajv.addSchema(schema, name);
const code = standalone.default(ajv, Object.fromEntries(Object.keys(VALIDATED_SCHEMAS).map((k) => [k, k])));
const out = path.join(specDir, 'validators.cjs');
fs.writeFileSync(out, `${code}\nexports.fingerprint = ${JSON.stringify(schemaFingerprint())};\n`);
console.log(`[bnx build] spec validators precompiled: ${path.relative(root, out)}`);
