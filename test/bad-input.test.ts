import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { assertNoStackTrace, BNX, ROOT, tmpDir, TINY_SPEC } from './helpers.js';

const exec = promisify(execFile);

/**
 * The bad-input matrix: every case must exit 2 with exactly one line on stderr that names the place
 * (`file:line:col`, a key path, or the flag) and what is allowed, and must write nothing.
 * A case is: a spec text (or null for "no spec file"), extra arguments, and the expected line.
 */
interface Case {
  name: string;
  spec?: string | null;
  args?: string[];
  /** Replaces the spec argument (for paths that do not exist or are directories). */
  specArg?: (dir: string) => string;
  /** Replaces the results root (for a results dir that is a file). */
  out?: (dir: string) => string;
  expect: RegExp;
}

const withTrain = (extra: string) => TINY_SPEC.replace('train:\n', `train:\n${extra}\n`);
const replace = (from: string, to: string) => TINY_SPEC.replace(from, to);

const CASES: Case[] = [
  {
    name: 'malformed YAML (unclosed flow)',
    spec: 'name: x\ntrain: {lr: 0.1\n',
    expect: /spec\.yaml:\d+:\d+: malformed YAML/,
  },
  {
    name: 'malformed YAML (bad indentation)',
    spec: 'name: x\n  data: 1\n bad: 2\n',
    expect: /spec\.yaml:\d+:\d+: malformed YAML/,
  },
  { name: 'tab indentation', spec: 'name: x\ntrain:\n\tlr: 1\n', expect: /spec\.yaml:\d+:\d+: malformed YAML/ },
  {
    name: 'duplicate top-level key',
    spec: `${TINY_SPEC}seed: 4\n`,
    expect: /spec\.yaml:\d+:\d+: malformed YAML: Map keys must be unique/,
  },
  {
    name: 'duplicate nested key',
    spec: withTrain('  lr: 0.1'),
    expect: /spec\.yaml:\d+:\d+: malformed YAML: Map keys must be unique/,
  },
  { name: 'spec is a list', spec: '- a\n- b\n', expect: /spec\.yaml:1:1: a spec must be a YAML mapping/ },
  { name: 'empty spec', spec: '', expect: /spec\.yaml:1:1: a spec must be a YAML mapping/ },
  {
    name: 'missing name',
    spec: TINY_SPEC.replace('name: tiny\n', ''),
    expect: /spec\.yaml: missing required key "name"/,
  },
  {
    name: 'unknown top-level key',
    spec: `${TINY_SPEC}trian: {}\n`,
    expect: /spec\.yaml:\d+:1: unknown key "trian" \(did you mean "train"\?\)/,
  },
  {
    name: 'unknown data key',
    spec: replace('val_size: 60', 'val_sise: 60'),
    expect: /spec\.yaml:6:3: unknown key "data\.val_sise" \(did you mean "val_size"\?\)/,
  },
  {
    name: 'unknown model key',
    spec: replace('hidden: [16]', 'hiden: [16]'),
    expect: /spec\.yaml:8:3: unknown key "model\.hiden" \(did you mean "hidden"\?\)/,
  },
  {
    name: 'unknown train key',
    spec: withTrain('  learning_rate: 0.1'),
    expect: /unknown key "train\.learning_rate"; allowed here: optimizer, lr/,
  },
  {
    name: 'unknown synthetic key',
    spec: replace('noise: 0.5', 'nois: 0.5'),
    expect: /unknown key "data\.synthetic\.nois" \(did you mean "noise"\?\)/,
  },
  {
    name: 'wrong type: lr string',
    spec: replace('lr: 0.5', 'lr: fast'),
    expect: /spec\.yaml:10:7: train\.lr is "fast", expected number/,
  },
  {
    name: 'wrong type: hidden scalar',
    spec: replace('hidden: [16]', 'hidden: 16'),
    expect: /model\.hidden is 16, expected array/,
  },
  {
    name: 'wrong type: steps float',
    spec: replace('steps: 40', 'steps: 4.5'),
    expect: /train\.steps is 4\.5, expected integer/,
  },
  { name: 'wrong type: seed string', spec: replace('seed: 3', 'seed: "3"'), expect: /seed is "3", expected integer/ },
  { name: 'lr = 0', spec: replace('lr: 0.5', 'lr: 0'), expect: /train\.lr is 0, must be > 0/ },
  { name: 'negative lr', spec: replace('lr: 0.5', 'lr: -0.1'), expect: /train\.lr is -0\.1, must be > 0/ },
  {
    name: 'batch size 0',
    spec: replace('batch_size: 20', 'batch_size: 0'),
    expect: /train\.batch_size is 0, must be >= 1/,
  },
  {
    name: 'batch size larger than the training set',
    spec: replace('batch_size: 20', 'batch_size: 241'),
    expect: /train\.batch_size is 241, larger than the training set \(240 examples\)/,
  },
  { name: 'momentum 1', spec: withTrain('  momentum: 1'), expect: /train\.momentum is 1, must be < 1/ },
  {
    name: 'hidden size 0',
    spec: replace('hidden: [16]', 'hidden: [16, 0]'),
    expect: /model\.hidden\.1 is 0, must be >= 1/,
  },
  {
    name: 'val_size >= training set',
    spec: replace('val_size: 60', 'val_size: 300'),
    expect: /data\.val_size is 300, must be < 300/,
  },
  { name: 'empty grid axis', spec: `${TINY_SPEC}grid:\n  train.lr: []\n`, expect: /grid\.train\.lr is empty/ },
  {
    name: 'grid axis not a list',
    spec: `${TINY_SPEC}grid:\n  train.lr: 0.1\n`,
    expect: /grid\.train\.lr is 0\.1, expected array/,
  },
  {
    name: 'unknown grid key',
    spec: `${TINY_SPEC}grid:\n  train.lrate: [0.1]\n`,
    expect: /spec\.yaml:\d+:3: unknown key "train\.lrate" \(did you mean "train\.lr"\?\)/,
  },
  {
    name: 'bad value in a grid axis',
    spec: `${TINY_SPEC}grid:\n  train.lr: [0.1, -1]\n`,
    expect: /spec\.yaml:\d+:\d+: train\.lr is -1, must be > 0/,
  },
  {
    name: 'unknown dataset',
    spec: replace('dataset: synthetic', 'dataset: cifar100'),
    expect: /data\.dataset is "cifar100"; allowed: mnist, fashion_mnist, cifar10, synthetic/,
  },
  {
    name: 'unknown arch',
    spec: replace('hidden: [16]', 'arch: transformer'),
    expect: /model\.arch is "transformer"; allowed: mlp, cnn/,
  },
  {
    name: 'unknown norm',
    spec: replace('hidden: [16]', 'norm: batchnorm'),
    expect: /model\.norm is "batchnorm"; allowed: none, batch/,
  },
  {
    name: 'unknown optimizer',
    spec: withTrain('  optimizer: adamw'),
    expect: /train\.optimizer is "adamw"; allowed: sgd/,
  },
  {
    name: 'unknown activation',
    spec: replace('hidden: [16]', 'activation: gelu'),
    expect: /model\.activation is "gelu"; allowed: sigmoid, relu, tanh, linear/,
  },
  {
    name: 'steps and epochs',
    spec: replace('steps: 40', 'steps: 40\n  epochs: 2'),
    expect: /give train\.steps or train\.epochs, not both/,
  },
  {
    name: 'name with ../',
    spec: replace('name: tiny', 'name: ../escape'),
    expect: /name is "\.\.\/escape"; allowed: letters, digits/,
  },
  { name: 'name with /', spec: replace('name: tiny', 'name: a/b'), expect: /name is "a\/b"; allowed: letters, digits/ },
  {
    name: 'missing data directory',
    spec: replace('dataset: synthetic', 'dataset: mnist\n  path: /nonexistent/mnist'),
    expect: /data\.path is "\/nonexistent\/mnist", which does not exist/,
  },
  { name: '--set without =', args: ['--set', 'train.lr'], expect: /--set train\.lr: expected key=value/ },
  {
    name: '--set unknown key',
    args: ['--set', 'train.rate=1'],
    expect: /--set train\.rate: unknown key "train\.rate"/,
  },
  { name: '--set empty value in list', args: ['--set', 'train.lr=0.1,,0.2'], expect: /--set train\.lr: empty value/ },
  {
    name: '--set out-of-range value',
    args: ['--set', 'train.batch_size=0'],
    expect: /--set train\.batch_size: train\.batch_size is 0, must be >= 1/,
  },
  {
    name: '--set unbalanced bracket',
    args: ['--set', 'model.hidden=[8,8'],
    expect: /--set model\.hidden: cannot parse value/,
  },
  { name: '--shard out of range', args: ['--shard', '3/3'], expect: /--shard 3\/3: expected I\/N with 0 <= I < N/ },
  {
    name: '--rerun unknown state',
    args: ['--rerun', 'broken'],
    expect: /--rerun broken: unknown state "broken"; allowed: pending, running/,
  },
  {
    name: '--backend unknown',
    args: ['--backend', 'gpu'],
    expect: /argument 'gpu' is invalid\. Allowed choices are tensorflow, cpu/,
  },
  {
    name: 'spec path does not exist',
    specArg: (d) => path.join(d, 'nope.yaml'),
    expect: /nope\.yaml: cannot read spec file \(ENOENT\)/,
  },
  { name: 'spec path is a directory', specArg: (d) => d, expect: /is a directory, expected a YAML spec file/ },
  {
    name: 'results dir is a file',
    out: (d) => path.join(d, 'spec.yaml'),
    expect: /--out \S+spec\.yaml: exists and is not a directory/,
  },
];

describe('bad input matrix: exit 2, one line naming the place, nothing written', () => {
  it(`has at least 30 cases (${CASES.length})`, () => assert.ok(CASES.length >= 30));

  const runCase = async (c: Case) => {
    const dir = tmpDir('bnx-bad-');
    const specFile = path.join(dir, 'spec.yaml');
    fs.writeFileSync(specFile, c.spec ?? TINY_SPEC);
    const out = c.out ? c.out(dir) : path.join(dir, 'results');
    const args = ['run', c.specArg ? c.specArg(dir) : specFile, '--out', out, ...(c.args ?? [])];
    const before = fs.readdirSync(dir).sort();
    const res = await exec(process.execPath, [BNX, ...args], { cwd: ROOT }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    return { res, before, after: fs.readdirSync(dir).sort() };
  };

  // Four at a time: each case is a separate bnx process.
  const pending = new Map<string, ReturnType<typeof runCase>>();
  let chain: Promise<unknown> = Promise.resolve();
  const slots = [chain, chain, chain, chain];
  CASES.forEach((c, i) => {
    const p = slots[i % 4].then(() => runCase(c));
    slots[i % 4] = p.catch(() => undefined);
    pending.set(c.name, p);
  });
  chain = Promise.all(slots);

  for (const c of CASES) {
    it(c.name, async () => {
      const { res, before, after } = await (pending.get(c.name) as ReturnType<typeof runCase>);
      assert.equal(res.code, 2, `exit code ${res.code}: ${res.stderr}`);
      assertNoStackTrace(res.stderr);
      const lines = res.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line, got:\n${res.stderr}`);
      assert.match(lines[0], c.expect);
      assert.deepEqual(after, before, 'nothing written');
    });
  }
});
