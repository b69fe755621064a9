#!/usr/bin/env node
// Test set-up: Debian packages the test suite needs and a fresh machine does not have:
//   chromium               the report test renders bnx's HTML report in headless Chromium;
//   dataset-fashion-mnist  the experiment-library smoke tests run the Fashion-MNIST specs.
// Installs the missing ones when running as root; otherwise says what to do and exits 1. Does
// nothing (fast) when both are present. BNX_CHROMIUM=/path/to/chromium uses another binary.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const chromium = process.env.BNX_CHROMIUM || '/usr/bin/chromium';
const fashionMnist = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

if (process.env.BNX_CHROMIUM && !fs.existsSync(chromium)) {
  console.error(`test-setup: BNX_CHROMIUM=${chromium} does not exist`);
  process.exit(1);
}

const needed = [
  { pkg: 'chromium', file: chromium, why: 'the report test needs headless Chromium' },
  { pkg: 'dataset-fashion-mnist', file: fashionMnist, why: 'the experiment smoke tests need Fashion-MNIST' },
].filter((n) => !fs.existsSync(n.file));
if (needed.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = fs.existsSync('/usr/bin/apt-get');
if (!isRoot || !hasApt) {
  const names = needed.map((n) => n.pkg).join(' ');
  console.error(
    needed.map((n) => `test-setup: ${n.file} is missing; ${n.why}.\n`).join('') +
      (hasApt
        ? `  Install as root: sudo apt-get update && sudo apt-get install -y ${names}\n`
        : '  Install Chromium and point BNX_CHROMIUM at its binary; put the Fashion-MNIST IDX files in ~/.keras/datasets/fashion-mnist.\n'),
  );
  process.exit(1);
}

const names = needed.map((n) => n.pkg);
console.log(`test-setup: installing Debian ${names.join(' and ')} for the tests (apt-get; about a minute)...`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...names]]) {
  const res = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (res.status !== 0) {
    console.error(`test-setup: apt-get ${args.join(' ')} failed (exit ${res.status ?? res.signal})`);
    process.exit(1);
  }
}
for (const n of needed) {
  if (!fs.existsSync(n.file)) {
    console.error(`test-setup: apt-get installed ${n.pkg} but ${n.file} is still missing`);
    process.exit(1);
  }
}
console.log(`test-setup: ${needed.map((n) => n.file).join(', ')} installed`);
