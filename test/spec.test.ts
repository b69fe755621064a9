import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InputError } from '../src/util/errors.js';
import { applyOverrides, loadSpec, parseOverride } from '../src/spec/load.js';
import { expandGrid } from '../src/spec/expand.js';
import { ROOT, tmpDir, writeSpec, TINY_SPEC } from './helpers.js';

const plan = (text: string, sets: string[] = []) => {
  const file = writeSpec(tmpDir(), text);
  return expandGrid(applyOverrides(loadSpec(file), sets.map(parseOverride)));
};

/** Asserts that `fn` throws an InputError whose message matches every pattern. */
function rejects(fn: () => unknown, ...patterns: RegExp[]): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `error is one line: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return e.message;
  }
  assert.fail('expected an InputError');
}

describe('shipped specs', () => {
  it('paper-mnist expands to BN and no-BN runs of the paper setup, seeds 1-3 each', () => {
    const runs = expandGrid(loadSpec(path.join(ROOT, 'experiments/paper-mnist.yaml')));
    assert.deepEqual(
      runs.map((r) => `${r.config.model.norm}/${r.config.seed}`),
      ['none/1', 'none/2', 'none/3', 'batch/1', 'batch/2', 'batch/3'],
    );
    for (const r of runs) {
      assert.deepEqual(r.config.model.hidden, [100, 100, 100]);
      assert.equal(r.config.model.activation, 'sigmoid');
      assert.equal(r.config.train.batch_size, 60);
      assert.equal(r.config.train.steps, 50000);
    }
  });
  it('every shipped spec is valid', () => {
    for (const f of ['quick', 'paper-mnist', 'self-experiment']) {
      assert.ok(expandGrid(loadSpec(path.join(ROOT, `experiments/${f}.yaml`))).length >= 2, f);
    }
  });
});

describe('grid and overrides', () => {
  const spec = `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n  train.lr: [0.1, 0.2]\n`;

  it('is the cartesian product, first axis slowest', () => {
    const runs = plan(spec);
    assert.deepEqual(
      runs.map((r) => [r.config.model.norm, r.config.train.lr]),
      [
        ['none', 0.1],
        ['none', 0.2],
        ['batch', 0.1],
        ['batch', 0.2],
      ],
    );
  });
  it('gives stable, readable ids', () => {
    const a = plan(spec).map((r) => r.id);
    assert.deepEqual(
      a,
      plan(spec).map((r) => r.id),
    );
    assert.match(a[0], /^norm=none_lr=0\.1_[0-9a-f]{8}$/);
    assert.equal(new Set(a).size, 4);
  });
  it('plain lists in the base config are values, not sweeps', () => {
    const runs = plan(TINY_SPEC.replace('hidden: [16]', 'hidden: [16, 8, 4]'));
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0].config.model.hidden, [16, 8, 4]);
  });
  it('--set with a comma list adds a sweep axis; a bracket list is one value', () => {
    const runs = plan(TINY_SPEC, ['train.lr=0.1,0.5,2', 'model.hidden=[20,10]']);
    assert.deepEqual(
      runs.map((r) => r.config.train.lr),
      [0.1, 0.5, 2],
    );
    for (const r of runs) assert.deepEqual(r.config.model.hidden, [20, 10]);
    assert.deepEqual(Object.keys(runs[0].params), ['train.lr', 'model.hidden']);
  });
  it('--set sweeps over lists', () => {
    const runs = plan(TINY_SPEC, ['model.hidden=[8],[8,8]']);
    assert.deepEqual(
      runs.map((r) => r.config.model.hidden),
      [[8], [8, 8]],
    );
  });
  it('--set replaces a grid axis on the same key (the command line wins)', () => {
    assert.deepEqual(
      plan(spec, ['train.lr=0.3']).map((r) => r.config.train.lr),
      [0.3, 0.3],
    );
    assert.deepEqual(
      plan(spec, ['model.norm=batch']).map((r) => r.config.model.norm),
      ['batch', 'batch'],
    );
  });
  it('seeds repeat each point', () => {
    const runs = plan(`${spec}seeds: [1, 2]\n`);
    assert.equal(runs.length, 8);
    assert.deepEqual(
      runs.slice(0, 2).map((r) => r.config.seed),
      [1, 2],
    );
  });
  it('train.steps from the command line replaces train.epochs from the file', () => {
    const runs = plan(TINY_SPEC.replace('steps: 40', 'epochs: 2'), ['train.steps=7']);
    assert.equal(runs[0].config.train.steps, 7);
    assert.equal(runs[0].config.train.epochs, null);
  });
});

describe('linked grid axes', () => {
  const linked = `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n  train.batch_size,train.lr: [[10, 0.05], [20, 0.1]]\n`;
  it('set their keys together, one value list per point', () => {
    const runs = plan(linked);
    assert.deepEqual(
      runs.map((r) => [r.config.model.norm, r.config.train.batch_size, r.config.train.lr]),
      [
        ['none', 10, 0.05],
        ['none', 20, 0.1],
        ['batch', 10, 0.05],
        ['batch', 20, 0.1],
      ],
    );
    assert.deepEqual(Object.keys(runs[0].params), ['model.norm', 'train.batch_size', 'train.lr']);
    assert.match(runs[1].id, /^norm=none_batch_size=20_lr=0\.1_[0-9a-f]{8}$/);
    // The hash is the configuration's: the same run reached without a linked axis has the same hash.
    const plain = plan(TINY_SPEC, ['model.norm=none', 'train.batch_size=20', 'train.lr=0.1']);
    assert.equal(plain[0].hash, runs[1].hash);
  });
  it('come from --set as lists, one value or a sweep', () => {
    assert.deepEqual(
      plan(TINY_SPEC, ['train.batch_size,train.lr=[10,0.05],[20,0.1]']).map((r) => r.config.train.lr),
      [0.05, 0.1],
    );
    const one = plan(linked, ['train.batch_size,train.lr=[30,0.3]']);
    assert.deepEqual(
      one.map((r) => [r.config.train.batch_size, r.config.train.lr]),
      [
        [30, 0.3],
        [30, 0.3],
      ],
    );
  });
  it('reject values of the wrong length, repeated keys and partial overrides', () => {
    rejects(
      () => plan(`${TINY_SPEC}grid:\n  train.batch_size,train.lr: [[10, 0.05], 20]\n`),
      /spec\.yaml:\d+:\d+: each value of the linked axis "train\.batch_size,train\.lr" is a list of 2 values/,
    );
    rejects(
      () => plan(`${TINY_SPEC}grid:\n  train.lr: [0.1]\n  train.batch_size,train.lr: [[10, 0.05]]\n`),
      /train\.lr is swept by two grid axes/,
    );
    rejects(() => plan(linked, ['train.lr=0.3']), /--set train\.lr: train\.lr is swept in the linked grid axis/);
    rejects(() => plan(TINY_SPEC, ['train.batch_size,train.lrr=[1,2]']), /unknown key "train\.lrr"/);
  });
});

describe('bad input: one line naming the place and what is allowed', () => {
  it('malformed YAML gives file:line:col', () => {
    rejects(() => plan('name: x\ntrain: {lr: 0.1\n'), /spec\.yaml:\d+:\d+: malformed YAML/);
  });
  it('duplicate keys', () => {
    rejects(() => plan('name: x\nname: y\n'), /spec\.yaml:2:1: malformed YAML/);
  });
  it('unknown keys with did-you-mean and location', () => {
    rejects(
      () => plan(TINY_SPEC.replace('lr: 0.5', 'lrr: 0.5')),
      /spec\.yaml:10:3: unknown key "train.lrr" \(did you mean "lr"\?\); allowed here: optimizer, lr/,
    );
    rejects(() => plan(`${TINY_SPEC}modle: {}\n`), /unknown key "modle" \(did you mean "model"\?\)/);
  });
  it('wrong types and out-of-range values', () => {
    rejects(
      () => plan(TINY_SPEC.replace('lr: 0.5', 'lr: fast')),
      /spec\.yaml:10:7: train\.lr is "fast", expected number/,
    );
    rejects(() => plan(TINY_SPEC.replace('lr: 0.5', 'lr: 0')), /train\.lr is 0, must be > 0/);
    rejects(() => plan(TINY_SPEC.replace('batch_size: 20', 'batch_size: 0')), /train\.batch_size is 0, must be >= 1/);
    rejects(
      () => plan(TINY_SPEC.replace('batch_size: 20', 'batch_size: 5000')),
      /train\.batch_size is 5000, larger than the training set \(240 examples\)/,
    );
  });
  it('unknown dataset / arch / norm list what is allowed', () => {
    rejects(
      () => plan(TINY_SPEC.replace('dataset: synthetic', 'dataset: imagenet')),
      /data\.dataset is "imagenet"; allowed: mnist, fashion_mnist, cifar10, synthetic/,
    );
    rejects(
      () => plan(`${TINY_SPEC}grid:\n  model.norm: [none, bacth]\n`),
      /spec\.yaml:\d+:\d+: model\.norm is "bacth"; allowed: none, batch/,
    );
    rejects(
      () => plan(TINY_SPEC.replace('hidden: [16]', 'arch: resnet')),
      /model\.arch is "resnet"; allowed: mlp, cnn/,
    );
  });
  it('empty grid axis and unknown grid key', () => {
    rejects(() => plan(`${TINY_SPEC}grid:\n  train.lr: []\n`), /grid\.train\.lr is empty/);
    rejects(
      () => plan(`${TINY_SPEC}grid:\n  train.lrate: [1]\n`),
      /unknown key "train\.lrate" \(did you mean "train\.lr"\?\)/,
    );
  });
  it('bad --set: syntax, unknown key, bad value', () => {
    rejects(() => plan(TINY_SPEC, ['train.lr']), /--set train\.lr: expected key=value/);
    rejects(() => plan(TINY_SPEC, ['lr=0.1']), /--set lr: unknown key "lr" \(did you mean "train\.lr"\?\)/);
    rejects(() => plan(TINY_SPEC, ['train.lr=0.1,,2']), /--set train\.lr: empty value/);
    rejects(() => plan(TINY_SPEC, ['train.lr=-1']), /--set train\.lr: train\.lr is -1, must be > 0/);
  });
  it('a spec name with a path separator', () => {
    rejects(
      () => plan(TINY_SPEC.replace('name: tiny', 'name: ../evil')),
      /name is "..\/evil"; allowed: letters, digits/,
    );
  });
  it('a missing spec file', () => {
    rejects(() => loadSpec('/nonexistent/spec.yaml'), /\/nonexistent\/spec\.yaml: cannot read spec file \(ENOENT\)/);
  });
  it('steps and epochs both, or neither', () => {
    rejects(
      () => plan(TINY_SPEC.replace('steps: 40', 'steps: 40\n  epochs: 2')),
      /give train\.steps or train\.epochs, not both/,
    );
    rejects(() => plan(TINY_SPEC.replace('steps: 40', 'eval_limit: null')), /set train\.steps or train\.epochs/);
  });
  it('adam with momentum: adam has its own (beta1)', () => {
    rejects(
      () => plan(TINY_SPEC.replace('lr: 0.5', 'lr: 0.5\n  optimizer: adam\n  momentum: 0.9')),
      /spec\.yaml:\d+:\d+: train\.momentum is 0\.9, but train\.optimizer adam has its own \(train\.adam\.beta1\); set train\.momentum to 0/,
    );
    rejects(
      () => plan(TINY_SPEC.replace('lr: 0.5', 'lr: 0.5\n  optimizer: adam'), ['train.momentum=0.5']),
      /train\.momentum is 0\.5, but train\.optimizer adam/,
    );
    const [run] = plan(TINY_SPEC.replace('lr: 0.5', 'lr: 0.5\n  optimizer: adam\n  adam: { beta2: 0.99 }'));
    assert.deepEqual(run.config.train.adam, { beta1: 0.9, beta2: 0.99, epsilon: 1e-7 });
  });
});

describe('precompiled spec validators', () => {
  it('npm run build leaves validators made from these schemas, which agree with freshly compiled ones', async () => {
    const { createRequire } = await import('node:module');
    const { Ajv } = await import('ajv');
    const { schemaFingerprint, specValidators, VALIDATED_SCHEMAS, VALIDATOR_OPTIONS } =
      await import('../src/spec/validators.js');
    const built = createRequire(import.meta.url)('../src/spec/validators.cjs') as { fingerprint: string };
    assert.equal(built.fingerprint, schemaFingerprint(), 'dist/src/spec/validators.cjs is stale: run npm run build');
    assert.equal(specValidators().runConfig, (built as unknown as { runConfig: unknown }).runConfig);
    const fresh = new Ajv(VALIDATOR_OPTIONS).compile(VALIDATED_SCHEMAS.runConfig);
    const good = plan(TINY_SPEC)[0].config as unknown as Record<string, Record<string, unknown>>;
    for (const config of [
      good,
      { ...good, train: { ...good.train, lr: -1 } },
      { ...good, model: { ...good.model, norm: 'bacth' } },
      { ...good, extra: 1 },
    ]) {
      const validate = specValidators().runConfig;
      assert.equal(validate(config), fresh(config));
      assert.deepEqual(validate.errors ?? null, fresh.errors ?? null);
    }
  });
});
