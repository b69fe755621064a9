#!/usr/bin/env node
// Rewrites the `--help` blocks of docs/cli.md from the built CLI, so the option lists are what
// `bnx <command> --help` prints. A help block is a fenced block whose first line is
// `$ ./bin/bnx.js <command> --help` (or `$ ./bin/bnx.js --help`); everything after that line, up to
// the closing fence, is replaced. test/docs.test.ts fails when a block and the CLI disagree.
// Usage: npm run build && node scripts/docs-help.mjs
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const file = path.join(root, 'docs', 'cli.md');
const lines = fs.readFileSync(file, 'utf8').split('\n');
const HELP = /^\$ \.\/bin\/bnx\.js ((?:[a-z-]+ )?)--help$/;

const out = [];
let changed = 0;
for (let i = 0; i < lines.length; i++) {
  out.push(lines[i]);
  const fence = /^(`{3,})\s*$/.exec(lines[i]);
  const m = fence && i + 1 < lines.length ? HELP.exec(lines[i + 1]) : null;
  if (!fence || !m) continue;
  const args = [...(m[1] ? [m[1].trim()] : []), '--help'];
  const res = spawnSync(process.execPath, [path.join(root, 'bin', 'bnx.js'), ...args], { cwd: root, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`bnx ${args.join(' ')} exited ${res.status}: ${res.stderr}`);
  out.push(lines[i + 1], ...res.stdout.replace(/\s+$/, '').split('\n').map((l) => l.trimEnd()));
  // Skip the old block body up to its closing fence, and keep the fence.
  let j = i + 2;
  while (j < lines.length && lines[j] !== fence[1]) j++;
  out.push(fence[1]);
  i = j;
  changed++;
}
fs.writeFileSync(file, out.join('\n'));
console.log(`docs/cli.md: ${changed} help block(s) written from the CLI`);
