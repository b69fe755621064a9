#!/usr/bin/env node
// Test set-up: the report test renders bnx's HTML report in headless Chromium (Debian's `chromium`
// package), which a fresh machine does not have. Installs it when missing and running as root;
// otherwise says what to do and exits 1. Does nothing (fast) when /usr/bin/chromium exists.
// BNX_CHROMIUM=/path/to/chromium uses another binary.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const chromium = process.env.BNX_CHROMIUM || '/usr/bin/chromium';

if (fs.existsSync(chromium)) process.exit(0);

if (process.env.BNX_CHROMIUM) {
  console.error(`test-setup: BNX_CHROMIUM=${chromium} does not exist`);
  process.exit(1);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = fs.existsSync('/usr/bin/apt-get');
if (!isRoot || !hasApt) {
  console.error(
    `test-setup: ${chromium} is missing; the report test needs headless Chromium.\n` +
      (hasApt
        ? '  Install it as root: sudo apt-get update && sudo apt-get install -y chromium\n'
        : '  Install Chromium and point BNX_CHROMIUM at its binary.\n'),
  );
  process.exit(1);
}

console.log('test-setup: installing Debian chromium for the report test (apt-get; about a minute)...');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'chromium']]) {
  const res = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (res.status !== 0) {
    console.error(`test-setup: apt-get ${args.join(' ')} failed (exit ${res.status ?? res.signal})`);
    process.exit(1);
  }
}
if (!fs.existsSync(chromium)) {
  console.error(`test-setup: apt-get installed chromium but ${chromium} is still missing`);
  process.exit(1);
}
console.log(`test-setup: ${chromium} installed`);
