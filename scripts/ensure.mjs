#!/usr/bin/env node
// Where `npm start` and `npm test` begin: installs whatever is missing, so that on a fresh clone
// these two commands are all a newcomer types, and they take seconds when everything is there.
//   1. packages    `npm ci`, when node_modules does not hold what package-lock.json lists
//   2. TensorFlow  scripts/setup.mjs, when tfjs-node's native addon has not been built
//   3. bnx         `npm run build`, when a source is newer than the last build
//   --test: 4. the Debian packages the tests use (scripts/test-setup.mjs)
// Each step says what it does; a step with nothing to do is silent.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd, args, why) {
  console.log(`[bnx] ${why}: ${cmd} ${args.join(' ')}`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    console.error(`[bnx] ${cmd} ${args.join(' ')} failed (exit ${res.status ?? res.signal}); see above`);
    process.exit(res.status || 1);
  }
}

const readJson = (file) => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
};

/** True when every package of package-lock.json (but other platforms' optional ones) is installed at its version. */
function packagesInstalled() {
  const lock = readJson(path.join(root, 'package-lock.json'));
  const installed = readJson(path.join(root, 'node_modules', '.package-lock.json'));
  if (!lock || !installed) return false;
  return Object.entries(lock.packages).every(([key, entry]) => key === '' || entry.optional || installed.packages?.[key]?.version === entry.version);
}

/** tfjs-node's addon, built by scripts/setup.mjs (lib/napi-v<N>/tfjs_binding.node). */
function addonBuilt() {
  const lib = path.join(root, 'node_modules', '@tensorflow', 'tfjs-node', 'lib');
  return fs.existsSync(lib) && fs.readdirSync(lib).some((d) => fs.existsSync(path.join(lib, d, 'tfjs_binding.node')));
}

/** The newest modification time among the files a build reads. */
function newestSource() {
  let newest = 0;
  const visit = (p) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src', 'test', 'bench', 'tsconfig.json', 'package.json', 'scripts/build.mjs', 'scripts/build-validators.mjs']) visit(path.join(root, p));
  return newest;
}

function buildCurrent() {
  const stamp = fs.statSync(path.join(root, 'dist', '.build-stamp'), { throwIfNoEntry: false });
  return stamp !== undefined && stamp.mtimeMs >= newestSource();
}

if (!packagesInstalled()) run(npm, ['ci'], 'installing the npm packages');
if (!addonBuilt()) run(process.execPath, [path.join('scripts', 'setup.mjs'), '--no-build'], "provisioning TensorFlow's native library");
if (!buildCurrent()) run(npm, ['run', 'build'], 'building bnx');
if (process.argv.includes('--test')) run(process.execPath, [path.join('scripts', 'test-setup.mjs')], 'checking what the tests need');
