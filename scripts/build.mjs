#!/usr/bin/env node
// `npm run build`: a clean compile of bnx into dist/ (tsc), the spec validators precompiled
// (scripts/build-validators.mjs), and dist/.build-stamp, which scripts/ensure.mjs compares with
// the sources' modification times to skip a build when nothing changed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const step = (args) => {
  const res = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) process.exit(res.status ?? 1);
};
// A clean dist: tsc never removes the output of a deleted source (a stale test would still run).
fs.rmSync(dist, { recursive: true, force: true });
step([path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
step([path.join(root, 'scripts', 'build-validators.mjs')]);
fs.writeFileSync(path.join(dist, '.build-stamp'), `${new Date().toISOString()}\n`);
