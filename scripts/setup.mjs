#!/usr/bin/env node
// Provisions TensorFlow's native library for @tensorflow/tfjs-node, then builds bnx.
//
// Why this exists: tfjs-node's install script downloads libtensorflow and a prebuilt addon from
// Google's storage. Where that host is unreachable (sandboxes, air-gapped clusters), `npm install`
// fails. This script tries the stock path first; if it fails, it takes libtensorflow from the
// `tensorflow-cpu` wheel (pip's configured index), which ships the same C and eager C API, and builds
// the addon from source against it with node-gyp. The repository's .npmrc sets ignore-scripts so that
// `npm ci` itself never attempts the download.
//
// Idempotent: when the addon already loads with the native backend, it only rebuilds bnx.
// Environment:
//   BNX_TF_WHEEL       path to an already downloaded tensorflow-cpu wheel (skips pip)
//   BNX_TF_PIP_SPEC    pip requirement for the wheel (default tensorflow-cpu==2.21.0)
//   BNX_CACHE_DIR      where the wheel is cached (default $XDG_CACHE_HOME/bnx or ~/.cache/bnx)
//   BNX_SETUP_SKIP_STOCK=1  do not try tfjs-node's own download first
// Flags: --no-build  provision the native backend only (skip compiling bnx)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tfjsNode = path.join(root, 'node_modules', '@tensorflow', 'tfjs-node');
const depsDir = path.join(tfjsNode, 'deps');
const depsLib = path.join(depsDir, 'lib');
const pipSpec = process.env.BNX_TF_PIP_SPEC ?? 'tensorflow-cpu==2.21.0';
const cacheDir = process.env.BNX_CACHE_DIR
  ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'bnx');
// Only the headers tfjs-node's binding includes (directly or transitively); the wheel has 13,000.
const HEADER_PREFIXES = ['tensorflow/c/', 'tensorflow/core/platform/', 'tsl/', 'xla/tsl/'];

const say = (msg) => console.log(`[bnx setup] ${msg}`);
const fail = (msg) => {
  console.error(`[bnx setup] error: ${msg}`);
  process.exit(1);
};

/** The addon lands in lib/napi-v<N>/ with N from tfjs-node's package.json, not necessarily Node's N-API. */
function hasBinding() {
  const lib = path.join(tfjsNode, 'lib');
  return fs.existsSync(lib) && fs.readdirSync(lib).some((d) => fs.existsSync(path.join(lib, d, 'tfjs_binding.node')));
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  return res.status === 0 && !res.error;
}

/** Loads tfjs-node in a child process; returns the backend name and TF version, or null. */
function probeNative() {
  const code = `const tf = require('@tensorflow/tfjs-node');
    console.log(JSON.stringify({ backend: tf.getBackend(), tf: tf.version.tfjs, lib: tf.version['tfjs-node'] }));`;
  const res = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (res.status !== 0) return null;
  try {
    const info = JSON.parse(res.stdout.trim().split('\n').pop());
    return info.backend === 'tensorflow' ? info : null;
  } catch {
    return null;
  }
}

function buildEnv() {
  const env = { ...process.env };
  env.PATH = `${path.join(root, 'node_modules', '.bin')}${path.delimiter}${env.PATH}`;
  // npm sets npm_config_nodedir from its config when it runs a script; node-gyp reads it to find
  // Node's headers without downloading them.
  if (!env.npm_config_nodedir) {
    const res = spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' });
    const dir = res.status === 0 ? res.stdout.trim() : '';
    if (dir && dir !== 'undefined' && fs.existsSync(path.join(dir, 'include', 'node'))) env.npm_config_nodedir = dir;
  }
  return env;
}

function stockInstall() {
  say('trying tfjs-node\'s stock install (downloads libtensorflow 2.9.1 from Google\'s storage)...');
  const ok = run(process.execPath, ['scripts/install.js'], { cwd: tfjsNode, env: buildEnv(), timeout: 300_000 });
  if (ok && probeNative()) return true;
  say('stock install did not produce a working native backend; falling back to the tensorflow-cpu wheel.');
  return false;
}

function findWheel() {
  if (process.env.BNX_TF_WHEEL) {
    if (!fs.existsSync(process.env.BNX_TF_WHEEL)) fail(`BNX_TF_WHEEL=${process.env.BNX_TF_WHEEL} does not exist`);
    return process.env.BNX_TF_WHEEL;
  }
  const wheelDir = path.join(cacheDir, 'wheels');
  fs.mkdirSync(wheelDir, { recursive: true });
  const cached = () => fs.readdirSync(wheelDir).filter((f) => /^tensorflow_cpu-.*\.whl$/.test(f)).sort().pop();
  let wheel = cached();
  if (!wheel) {
    say(`downloading ${pipSpec} with pip into ${wheelDir} (about 275 MB, cached for later runs)...`);
    const pip = spawnSync('python3', ['-m', 'pip', 'download', pipSpec, '--no-deps', '--retries', '1', '-d', wheelDir], { stdio: 'inherit' });
    if (pip.status !== 0) fail(`pip could not download ${pipSpec}; install python3 with pip, or set BNX_TF_WHEEL to a downloaded wheel`);
    wheel = cached();
    if (!wheel) fail(`pip reported success but no tensorflow_cpu wheel is in ${wheelDir}`);
  } else {
    say(`using cached wheel ${path.join(wheelDir, wheel)}`);
  }
  return path.join(wheelDir, wheel);
}

/** Extracts the two shared libraries and the needed headers from the wheel into deps/. */
function extractWheel(wheel) {
  say(`extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and headers from ${path.basename(wheel)}...`);
  fs.rmSync(depsDir, { recursive: true, force: true });
  fs.mkdirSync(depsLib, { recursive: true });
  const py = `
import sys, zipfile, shutil, os
wheel, deps, prefixes = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith('/'):
            continue
        if name in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'):
            dest = os.path.join(deps, 'lib', os.path.basename(name))
        elif name.startswith('tensorflow/include/') and any(name[len('tensorflow/include/'):].startswith(p) for p in prefixes):
            dest = os.path.join(deps, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest + '.part', 'wb') as out:
            shutil.copyfileobj(src, out, 1 << 22)
        os.replace(dest + '.part', dest)
`;
  if (!run('python3', ['-c', py, wheel, depsDir, HEADER_PREFIXES.join(',')])) fail(`could not extract ${wheel}`);
  for (const lib of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
    if (!fs.existsSync(path.join(depsLib, lib))) fail(`${lib} is not in ${wheel}; is it a tensorflow-cpu wheel for Linux?`);
  }
  // tfjs-node's install.js skips its download when libtensorflow.so.2.9.1 exists; the linker wants
  // libtensorflow.so and libtensorflow_framework.so. All point at the wheel's libraries.
  const links = {
    'libtensorflow.so.2.9.1': 'libtensorflow_cc.so.2',
    'libtensorflow.so': 'libtensorflow_cc.so.2',
    'libtensorflow_framework.so': 'libtensorflow_framework.so.2',
  };
  for (const [link, target] of Object.entries(links)) fs.symlinkSync(target, path.join(depsLib, link));
}

function buildFromWheel() {
  extractWheel(findWheel());
  say('building tfjs_binding.node from source with node-gyp...');
  fs.rmSync(path.join(tfjsNode, 'lib'), { recursive: true, force: true });
  if (!run(process.execPath, ['scripts/install.js'], { cwd: tfjsNode, env: buildEnv() })) {
    fail('node-gyp could not build the tfjs-node binding (needs g++, make, python3 and Node\'s headers)');
  }
}

function main() {
  if (!fs.existsSync(tfjsNode)) fail('node_modules/@tensorflow/tfjs-node is missing: run `npm ci` first');
  let info = hasBinding() ? probeNative() : null;
  if (info) {
    say(`native TensorFlow backend already works (tfjs-node ${info.lib}); nothing to provision.`);
  } else {
    const stockOk = process.env.BNX_SETUP_SKIP_STOCK !== '1' && stockInstall();
    if (!stockOk) buildFromWheel();
    info = probeNative();
    if (!info) fail('the tfjs-node binding was built but does not load with the tensorflow backend; run `bnx doctor` for details');
    say(`native TensorFlow backend works (tfjs-node ${info.lib}).`);
  }
  if (process.argv.includes('--no-build')) return;
  say('compiling bnx (tsc)...');
  if (!run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root])) fail('TypeScript compilation failed');
  if (!run(process.execPath, [path.join(root, 'scripts', 'build-validators.mjs')])) fail('precompiling the spec validators failed');
  say('done. Try: ./bin/bnx.js doctor');
}

main();
