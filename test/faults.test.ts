import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { MNIST_FILES, loadDataset } from '../src/data/index.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import { readIndex } from '../src/store/sweep-index.js';
import { InputError } from '../src/util/errors.js';
import { copySweep, FIXTURE_SPEC, runHashes, trainSweep, type Sweep } from './fault-helpers.js';
import {
  assertNoStackTrace,
  bnx,
  hashTree,
  oneLine,
  ROOT,
  startBnx,
  tmpDir,
  TINY_SPEC,
  writeFashionQuadrants,
  writeSpec,
} from './helpers.js';

/**
 * Fault injection, part 1: hostile inputs and damaged files (issue 16). Every case asserts the exit
 * code and exactly one line on stderr without a stack frame; cases on a trained sweep also assert
 * that the completed runs' files did not change, and that a plain rerun afterwards completes.
 * Part 2 (faults-runs.test.ts): full disks, immutable files and signals while training.
 */

/** Runs bnx without waiting for it alone: cases of one describe block overlap (each is a process). */
const run = async (args: string[], env?: NodeJS.ProcessEnv) => startBnx(args, { env }).done;

/** A spec in a fresh folder, and a results root there that does not exist yet. */
function scratch(text: string): { spec: string; out: string; dir: string } {
  const dir = tmpDir('bnx-hostile-');
  return { spec: writeSpec(dir, text), out: path.join(dir, 'results'), dir };
}

interface Refusal {
  name: string;
  spec?: string;
  args?: string[];
  command?: 'run' | 'plan';
  expect: RegExp;
  /** What the line must not say (a misleading message it used to give). */
  not?: RegExp;
}

/** Bad input refused before any work: exit 2, one line, and `bnx run` writes nothing. */
function refusals(cases: Refusal[]): void {
  for (const c of cases) {
    it(c.name, async () => {
      const { spec, out } = scratch(c.spec ?? TINY_SPEC);
      const command = c.command ?? 'run';
      const args = [command, spec, ...(command === 'run' ? ['--out', out] : []), ...(c.args ?? [])];
      const res = await run(args);
      assert.equal(res.code, 2, res.stderr);
      const line = oneLine(res);
      assert.match(line, c.expect);
      if (c.not) assert.doesNotMatch(line, c.not);
      assert.equal(fs.existsSync(out), false, 'nothing written');
    });
  }
}

describe('defect 3: every number in a spec is finite, and the step count is bounded', { concurrency: 4 }, () => {
  refusals([
    {
      name: 'defect 3: steps: 1e400 in a spec names the place and says "not a finite number"',
      spec: TINY_SPEC.replace('steps: 40', 'steps: 1e400'),
      expect: /spec\.yaml:12:10: train\.steps is 1e400, not a finite number; every number in a spec must be finite/,
    },
    {
      name: 'defect 3: --set train.steps=.inf',
      args: ['--set', 'train.steps=.inf'],
      expect: /^bnx: --set train\.steps: train\.steps is \.inf, not a finite number/,
    },
    {
      name: 'defect 3: --set train.epochs=1e999',
      args: ['--set', 'train.epochs=1e999'],
      expect: /--set train\.epochs: train\.epochs is 1e999, not a finite number/,
    },
    {
      name: 'defect 3: lr: .inf in a spec',
      spec: TINY_SPEC.replace('lr: 0.5', 'lr: .inf'),
      expect: /spec\.yaml:10:7: train\.lr is \.inf, not a finite number/,
    },
    {
      name: 'defect 3: model.init_std: .inf',
      spec: TINY_SPEC.replace('hidden: [16]', 'hidden: [16]\n  init_std: -.inf'),
      expect: /model\.init_std is -\.inf, not a finite number/,
    },
    {
      name: 'defect 3: an infinite value inside a grid axis',
      spec: `${TINY_SPEC}grid:\n  train.lr: [0.1, .inf]\n`,
      expect: /spec\.yaml:\d+:\d+: train\.lr is \.inf, not a finite number/,
    },
    {
      name: 'defect 3: NaN is refused as not a number, not as "null"',
      args: ['--set', 'train.lr=.nan'],
      expect: /train\.lr is \.nan, not a finite number/,
      not: /null/,
    },
    {
      name: 'defect 3: train.steps above the bound',
      args: ['--set', 'train.steps=20000000'],
      expect: /--set train\.steps: train\.steps is 20000000, must be <= 10000000/,
    },
    {
      name: 'defect 3: train.epochs above the bound',
      args: ['--set', 'train.epochs=1000000'],
      expect: /train\.epochs is 1000000, must be <= 100000/,
    },
    {
      name: 'defect 3: epochs that make more steps than the bound',
      spec: TINY_SPEC.replace('batch_size: 20', 'batch_size: 2'),
      args: ['--set', 'train.epochs=90000'],
      expect: /train\.epochs is 90000: 10,800,000 steps of batch 2 over 240 examples, more than the 10,000,000/,
    },
    {
      name: 'oversized: a synthetic dataset too large for memory',
      spec: TINY_SPEC.replace('features: 8', 'features: 100000').replace('train_size: 300', 'train_size: 9000'),
      expect: /the synthetic dataset would hold 909,000,000 values/,
    },
  ]);

  it('defect 3: run.json never stores null for a number of the config', () => {
    // Every config leaf run.json stores as null is a key that is null by design (data.path, train.epochs, ...).
    const record = JSON.parse(fs.readFileSync(path.join(fixture().runs[0], 'run.json'), 'utf8'));
    const nulls: string[] = [];
    const walk = (v: unknown, at: string, def: unknown) => {
      if (v === null && def !== null) nulls.push(at);
      if (v !== null && typeof v === 'object' && !Array.isArray(v))
        for (const [k, x] of Object.entries(v)) walk(x, `${at}.${k}`, (def as Record<string, unknown>)?.[k]);
    };
    walk(record.config, 'config', { ...DEFAULT_CONFIG, train: { ...DEFAULT_CONFIG.train, steps: 40 } });
    assert.deepEqual(nulls, []);
  });
});

describe('defect 6: unbounded work is refused before it starts', { concurrency: 4 }, () => {
  const axes = (n: number, values: number) =>
    `${TINY_SPEC}grid:\n${[
      'train.lr',
      'train.momentum',
      'model.init_std',
      'model.batch_norm.eps',
      'model.layer_norm.eps',
      'model.group_norm.eps',
      'train.adam.epsilon',
    ]
      .slice(0, n)
      .map((k) => `  ${k}: [${Array.from({ length: values }, (_, i) => (i + 1) / 1000).join(', ')}]`)
      .join('\n')}\n`;
  refusals([
    {
      name: 'defect 6: plan on a 10^7-point grid is one line, at once',
      command: 'plan',
      spec: axes(7, 10),
      expect: /spec\.yaml: the grid has 10,000,000 points \(train\.lr: 10 x .*\); a spec plans at most 10,000 runs/,
    },
    {
      name: 'defect 6: a 200,000-point grid (past the old stack overflow) is refused the same way',
      spec: axes(2, 500)
        .replace('  train.momentum', '  seed')
        .replace(/seed: \[[^\]]*\]/, `seed: [${Array.from({ length: 400 }, (_, i) => i).join(', ')}]`),
      expect: /the grid has 200,000 points/,
      not: /call stack/,
    },
    {
      name: "defect 6: a YAML alias bomb is one line, not the yaml library's ReferenceError",
      spec: `${TINY_SPEC}description: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`,
      expect: /spec\.yaml: YAML aliases expand too far/,
      not: /ReferenceError|resource exhaustion/,
    },
    {
      name: 'defect 6: a spec over 1 MiB is refused unread',
      spec: `${TINY_SPEC}# ${'x'.repeat(2 * 1024 * 1024)}\n`,
      expect: /spec\.yaml: is 2 MiB; a spec is at most 1 MiB/,
    },
    {
      name: 'defect 6: an alias bomb in --set',
      args: ['--set', `model.hidden=${aliasBomb()}`],
      expect: /^bnx: --set model\.hidden: YAML aliases expand too far/,
    },
  ]);

  it('defect 6: sweep.json keeps each spec text once, also when nothing runs; an old sweep.json is read and compacted', () => {
    const s = copySweep(fixture());
    const file = path.join(s.dir, 'sweep.json');
    // The form bnx wrote before: every invocation with its own copy of the spec text.
    const text = fs.readFileSync(s.spec, 'utf8');
    const current = JSON.parse(fs.readFileSync(file, 'utf8'));
    const { specs: _specs, ...rest } = current;
    const old = {
      ...rest,
      invocations: [1, 2, 3].map((i) => {
        const { spec_sha256: _sha, ...inv } = current.invocations[0];
        return { ...inv, at: `2026-01-0${i}T00:00:00.000Z`, spec_text: text };
      }),
    };
    fs.writeFileSync(file, JSON.stringify(old));
    const before = runHashes(s);
    const res = bnx(['run', s.spec, '--out', s.out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.deepEqual(runHashes(s), before, 'completed runs untouched');
    const index = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(index.invocations.length, 4);
    assert.deepEqual(Object.values(index.specs), [text], 'one copy of the text');
    assert.ok(index.invocations.every((i: Record<string, unknown>) => !('spec_text' in i) && i.spec_sha256));
    assert.ok(fs.statSync(file).size < text.length + 2500, `${fs.statSync(file).size} bytes`);
    assert.deepEqual(readIndex(s.dir, 'tiny').specs, index.specs);
  });
});

describe('defects 9 and 10: nonsense refused, messages that say what is wrong', { concurrency: 4 }, () => {
  const dataFile = path.join(tmpDir('bnx-datafile-'), 'mnist.bin');
  fs.writeFileSync(dataFile, 'not a folder');
  refusals([
    {
      name: 'defect 9: model.hidden: [] with a norm is refused (the run would equal no norm)',
      spec: TINY_SPEC.replace('hidden: [16]', 'hidden: []\n  norm: batch'),
      expect: /spec\.yaml:8:11: model\.hidden is \[\], so model\.norm batch has no hidden layer to normalize/,
    },
    {
      name: 'defect 9: data.path with dataset synthetic is refused',
      spec: TINY_SPEC.replace('val_size: 60', `val_size: 60\n  path: ${os.tmpdir()}`),
      expect:
        /spec\.yaml:\d+:\d+: data\.path is ".*", but the synthetic dataset is generated in memory and reads no files/,
    },
    {
      name: 'defect 9: a data.path that is a regular file is refused up front',
      spec: `name: files\ndata: { dataset: mnist, path: ${dataFile} }\ntrain: { steps: 10 }\n`,
      expect: /data\.path is ".*mnist\.bin", a file; give the directory holding the dataset's files/,
    },
    {
      name: 'defect 10: a grid on name says name is not a grid axis (nothing repeats)',
      spec: `${TINY_SPEC}grid:\n  name: [a, b]\n`,
      expect: /spec\.yaml:\d+:3: name is not a grid axis/,
      not: /repeated/,
    },
    {
      name: 'defect 10: --set name=a,b says the same',
      args: ['--set', 'name=a,b'],
      expect: /--set name: name is not a grid axis/,
    },
  ]);

  it("defect 10: --time is checked against Slurm's formats before it goes into #SBATCH --time", async () => {
    const { spec } = scratch(TINY_SPEC);
    const bad = await run(['export-job', spec, '--slurm', '--time', '4h; rm -rf /']);
    assert.equal(bad.code, 2);
    assert.match(oneLine(bad), /--time 4h; rm -rf \/: not a Slurm time limit; use minutes, MM:SS, HH:MM:SS, D-HH/);
    for (const time of ['90', '2-12:30', '1-00:00:00']) {
      const ok = await run(['export-job', spec, '--slurm', '--time', time]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, new RegExp(`^#SBATCH --time=${time}$`, 'm'));
    }
  });

  it('defect 10: export-job -o into a missing folder creates it, as plot -o does; -o a folder is refused', async () => {
    const { spec, dir } = scratch(TINY_SPEC);
    const file = path.join(dir, 'jobs', 'slurm', 'sweep.sh');
    const res = await run(['export-job', spec, '--slurm', '-o', file]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(fs.readFileSync(file, 'utf8'), /^#SBATCH --array=0-0$/m);
    const folder = await run(['export-job', spec, '--slurm', '-o', dir]);
    assert.equal(folder.code, 2);
    assert.match(oneLine(folder), /-o .*: is a directory; give a file name/);
  });

  it('defect 10: a labels file with the wrong magic number is reported as such, not as a huge truncated file', () => {
    const dir = tmpDir('bnx-idx-');
    writeFashionQuadrants(dir);
    // An images file (magic 0x00000803, three dimensions) where the labels belong.
    fs.copyFileSync(path.join(dir, MNIST_FILES.trainImages), path.join(dir, MNIST_FILES.trainLabels));
    const config = JSON.parse(
      bnxJson([
        'plan',
        writeSpec(
          dir,
          `name: idx\ndata: { dataset: fashion_mnist, path: ${dir}, val_size: 50 }\ntrain: { steps: 1 }\n`,
        ),
        '--json',
      ]),
    )[0].config;
    assert.throws(
      () => loadDataset(config.data),
      (e: unknown) =>
        e instanceof InputError &&
        /train-labels-idx1-ubyte: bad magic number 0x00000803: 3 dimension\(s\), expected 0x00000801 \(an IDX labels file: 1 dimension\(s\)\); is it an images file\?/.test(
          e.message,
        ) &&
        !/truncated|\d{12,}/.test(e.message),
    );
  });
});

/** A YAML list whose aliases multiply (10^4 copies of x from a few dozen characters). */
function aliasBomb(): string {
  const ten = (x: string) => `[${Array(10).fill(x).join(', ')}]`;
  return `[&a ${ten('1')}, &b ${ten('*a')}, &c ${ten('*b')}, &d ${ten('*c')}, ${ten('*d')}]`;
}

/** `bnx ... --json`'s stdout (exit 0 required). */
function bnxJson(args: string[]): string {
  const res = bnx(args);
  assert.equal(res.code, 0, res.stderr);
  return res.stdout;
}

// A trained sweep to damage: trained once for this file, copied for each case.
let trained: Sweep | null = null;
const fixture = (): Sweep => {
  trained ??= trainSweep(FIXTURE_SPEC);
  return trained;
};

/**
 * A damaged file in a copy of the trained sweep: what each reader says (exit code, the one line),
 * with every run folder unchanged afterwards (readers never write; refusals write nothing).
 */
interface Damage {
  name: string;
  damage: (s: Sweep) => void;
  /** Commands and what they must do: exit code and the stderr line (null: no stderr at all). */
  expect: { args: (s: Sweep) => string[]; code: number; line: RegExp | null }[];
}

const READERS_TOLERATE = (line: RegExp): Damage['expect'] => [
  { args: (s) => ['ls', s.out], code: 0, line },
  { args: (s) => ['diff', s.dir], code: 0, line },
  { args: (s) => ['plot', s.dir, '--term'], code: 0, line },
  { args: (s) => ['report', s.dir, '-o', path.join(s.out, '..', 'report.md')], code: 0, line },
];

const tear = (file: string, text: string) => fs.appendFileSync(file, text);
const truncate = (file: string, bytes: number) => fs.writeFileSync(file, fs.readFileSync(file).subarray(0, bytes));

const DAMAGES: Damage[] = [
  {
    name: 'defect 4: a torn last line in metrics.csv (what a kill leaves; tail -f) is read up to it by ls, diff, plot and report; merge refuses to copy it',
    damage: (s) => tear(path.join(s.runs[0], 'metrics.csv'), '50,1.25,0.3'),
    expect: [
      ...READERS_TOLERATE(
        /^bnx: \S+norm=none_\w+\/metrics\.csv: the last line is cut short .*; read the 4 complete row\(s\) before it$/,
      ),
      {
        args: (s) => ['merge', s.out, '--out', path.join(s.out, '..', 'merged')],
        code: 2,
        line: /^bnx: \S+\/metrics\.csv: damaged: the last line is cut short/,
      },
    ],
  },
  {
    name: 'defect 4: a garbage row inside metrics.csv: the rows before it are read, the file is named',
    damage: (s) => {
      const file = path.join(s.runs[1], 'metrics.csv');
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      lines.splice(3, 0, '\u0000\u0000garbage');
      fs.writeFileSync(file, lines.join('\n'));
    },
    // The readers share one metrics reader: ls and diff stand for all four here (the torn case above runs all).
    expect: READERS_TOLERATE(
      /^bnx: \S+norm=batch_\w+\/metrics\.csv: line 4 is not a metrics row .*; read the 2 row\(s\) before it$/,
    ).slice(0, 2),
  },
  {
    name: 'defect 4: a torn instrument CSV is plotted up to its last whole line; merge refuses it',
    damage: (s) => tear(path.join(s.runs[0], 'eval_gap.csv'), '60,0.5'),
    expect: [
      {
        args: (s) => ['plot', s.dir, '--instrument', 'eval_gap', '--term'],
        code: 0,
        line: /^bnx: \S+\/eval_gap\.csv: the last line is cut short/,
      },
      {
        args: (s) => ['merge', s.out, '--out', path.join(s.out, '..', 'merged')],
        code: 2,
        line: /^bnx: \S+\/eval_gap\.csv: damaged: the last line is cut short/,
      },
    ],
  },
  {
    name: 'defects 4 and 10: a truncated run.json is named by ls, plot and report (the run left out), refused by run, merge and export',
    damage: (s) => truncate(path.join(s.runs[0], 'run.json'), 120),
    expect: [
      {
        args: (s) => ['ls', s.out],
        code: 0,
        line: /^bnx: \S+norm=none_\w+\/run\.json: damaged: not valid JSON .*; left out$/,
      },
      { args: (s) => ['plot', s.dir, '--term'], code: 0, line: /run\.json: damaged: not valid JSON/ },
      {
        args: (s) => ['report', s.dir, '-o', path.join(s.out, '..', 'r.html')],
        code: 0,
        line: /run\.json: damaged: not valid JSON/,
      },
      {
        args: (s) => ['run', s.spec, '--out', s.out],
        code: 2,
        line: /^bnx: \S+norm=none_\w+\/run\.json: damaged: not valid JSON .*; bnx will not write over it/,
      },
      {
        args: (s) => ['merge', s.out, '--out', path.join(s.out, '..', 'merged')],
        code: 2,
        line: /run\.json: damaged: not valid JSON/,
      },
      { args: (s) => ['export', s.runs[0]], code: 2, line: /run\.json: damaged: not valid JSON/ },
    ],
  },
  {
    name: 'defect 4: a run.json of garbage, or empty',
    damage: (s) => {
      fs.writeFileSync(path.join(s.runs[0], 'run.json'), '{"id": 3, "x": [');
      fs.writeFileSync(path.join(s.runs[1], 'run.json'), '');
    },
    expect: [
      { args: (s) => ['run', s.spec, '--out', s.out], code: 2, line: /run\.json: damaged: not valid JSON/ },
      {
        args: (s) => ['plot', s.dir, '--term'],
        code: 2,
        line: /^bnx: \S+tiny: no run to read: \S+run\.json: damaged: .*\(and 1 more damaged run\(s\)\)$/,
      },
    ],
  },
  {
    name: 'defect 8: a run.json that is a folder: one line, exit 2, nothing written to sweep.json',
    damage: (s) => {
      fs.rmSync(path.join(s.runs[1], 'run.json'));
      fs.mkdirSync(path.join(s.runs[1], 'run.json'));
    },
    expect: [
      {
        args: (s) => ['run', s.spec, '--out', s.out],
        code: 2,
        line: /run\.json: damaged: a folder, where a run\.json file belongs/,
      },
      {
        args: (s) => ['ls', s.out],
        code: 0,
        line: /run\.json: damaged: a folder, where a run\.json file belongs; left out/,
      },
    ],
  },
  {
    name: 'defect 8: a metrics.csv that is a folder is named by the readers',
    damage: (s) => {
      fs.rmSync(path.join(s.runs[0], 'metrics.csv'));
      fs.mkdirSync(path.join(s.runs[0], 'metrics.csv'));
    },
    expect: [
      {
        args: (s) => ['ls', s.out],
        code: 0,
        line: /metrics\.csv: damaged: a folder, where the metrics\.csv file belongs/,
      },
    ],
  },
  ...['[]', 'garbage', '', '{"name": "tiny", "points": {"a": {"id": 1}}, "invocations": []}'].map(
    (content): Damage => ({
      name: `defect 4: sweep.json ${JSON.stringify(content.slice(0, 20))} is named by run and merge, never written over`,
      damage: (s) => fs.writeFileSync(path.join(s.dir, 'sweep.json'), content),
      expect: [
        {
          args: (s) => ['run', s.spec, '--out', s.out],
          code: 2,
          line: /^bnx: \S+tiny\/sweep\.json: damaged: .*bnx will not write over it/,
        },
        {
          args: (s) => ['merge', s.out, '--out', path.join(s.out, '..', 'merged')],
          code: 2,
          line: /sweep\.json: damaged:/,
        },
      ],
    }),
  ),
  {
    name: 'defects 4 and 10: truncated weights.bin and weights.json, and a missing weights.bin, are named by export (before TensorFlow loads) and merge',
    damage: (s) => {
      truncate(path.join(s.runs[0], 'weights.bin'), 100);
      truncate(path.join(s.runs[1], 'weights.json'), 60);
    },
    expect: [
      {
        args: (s) => ['export', s.runs[0]],
        code: 2,
        line: /norm=none_\w+\/weights\.bin: damaged: 100 bytes, but weights\.json lists \d+ \(\d+ float32 weights\)/,
      },
      { args: (s) => ['export', s.runs[1]], code: 2, line: /norm=batch_\w+\/weights\.json: damaged: not valid JSON/ },
      {
        args: (s) => ['merge', s.out, '--out', path.join(s.out, '..', 'merged')],
        code: 2,
        line: /weights\.(bin|json): damaged/,
      },
    ],
  },
  {
    name: 'defect 10: export with weights.bin missing names weights.bin',
    damage: (s) => fs.rmSync(path.join(s.runs[0], 'weights.bin')),
    expect: [
      {
        args: (s) => ['export', s.runs[0]],
        code: 2,
        line: /^bnx: \S+norm=none_\w+\/weights\.bin: missing \(its weights\.json is there\)/,
      },
    ],
  },
  {
    name: 'defect 7: merge into one of its own run folders is refused in one line',
    damage: () => undefined,
    expect: [
      {
        args: (s) => ['merge', s.out, '--out', s.runs[0]],
        code: 2,
        line: /^bnx: --out \S+norm=none_\w+: is inside \S+tiny, a sweep folder merge reads from/,
      },
      {
        args: (s) => ['merge', s.dir, '--out', path.join(s.runs[1], 'inner')],
        code: 2,
        line: /is inside \S+tiny, a sweep folder merge reads from/,
      },
    ],
  },
];

describe('defects 4, 7, 8 and 10: damaged files are named in one line, never written over', { concurrency: 3 }, () => {
  before(() => void fixture());
  for (const d of DAMAGES) {
    it(d.name, async () => {
      const s = copySweep(fixture());
      d.damage(s);
      const hashes = runHashes(s);
      const sweepJson = fs.existsSync(path.join(s.dir, 'sweep.json'))
        ? fs.readFileSync(path.join(s.dir, 'sweep.json'))
        : null;
      for (const e of d.expect) {
        const args = e.args(s);
        const res = await run(args);
        assert.equal(res.code, e.code, `bnx ${args.join(' ')}: exit ${res.code}\n${res.stderr}`);
        if (e.line === null) assert.equal(res.stderr, '');
        else assert.match(oneLine(res), e.line, `bnx ${args.join(' ')}`);
        assert.deepEqual(runHashes(s), hashes, `bnx ${args[0]} changed a run folder`);
        if (sweepJson)
          assert.deepEqual(fs.readFileSync(path.join(s.dir, 'sweep.json')), sweepJson, 'sweep.json untouched');
        assert.equal(fs.existsSync(path.join(s.out, '..', 'merged')), false, 'merge wrote nothing');
      }
    });
  }

  it('defect 4: after a torn metrics.csv and a truncated summary.csv, a plain rerun completes the sweep and rewrites the summary', async () => {
    const s = copySweep(fixture());
    tear(path.join(s.runs[0], 'metrics.csv'), '50,1.2');
    truncate(path.join(s.dir, 'summary.csv'), 30);
    // A temporary file left by a process killed mid-write (its pid is gone) is cleaned up.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    fs.writeFileSync(path.join(s.runs[1], `.run.json.${dead}.tmp`), '{"half');
    fs.writeFileSync(path.join(s.dir, `.sweep.json.${dead}.tmp`), '');
    const hashes = runHashes(s);
    const res = await run(['run', s.spec, '--out', s.out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.match(res.stdout, /norm=none_\w+: completed, skipped/);
    assert.deepEqual(runHashes(s), hashes, 'completed runs untouched');
    assert.equal(fs.existsSync(path.join(s.runs[1], `.run.json.${dead}.tmp`)), false, 'stale temporary file gone');
    assert.equal(fs.existsSync(path.join(s.dir, `.sweep.json.${dead}.tmp`)), false);
    assert.equal(fs.readFileSync(path.join(s.dir, 'summary.csv'), 'utf8').trim().split('\n').length, 3);
  });

  it('defect 4: once a damaged run.json is moved away, as the message says, a plain rerun trains that run afresh', async () => {
    const s = copySweep(fixture());
    truncate(path.join(s.runs[0], 'run.json'), 80);
    const refused = await run(['run', s.spec, '--out', s.out]);
    assert.equal(refused.code, 2);
    oneLine(refused);
    fs.renameSync(s.runs[0], path.join(s.out, '..', 'damaged-run'));
    const other = hashTree(s.runs[1]);
    const res = await run(['run', s.spec, '--out', s.out]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /done norm=none_/);
    assert.deepEqual(hashTree(s.runs[1]), other);
  });
});

describe('defect 8: refusals are one line, also where TensorFlow would log', { concurrency: 3 }, () => {
  it('defect 8: a changed grid point is refused before TensorFlow loads, even with its logs turned on', async () => {
    const s = copySweep(fixture());
    fs.writeFileSync(s.spec, fs.readFileSync(s.spec, 'utf8').replace('lr: 0.5', 'lr: 0.25'));
    const before = hashTree(s.out);
    const res = await run(['run', s.spec, '--out', s.out], { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0' });
    assert.equal(res.code, 2);
    assert.match(oneLine(res), /run norm=none exists here with a different configuration \(train\.lr 0\.5 -> 0\.25\)/);
    assert.equal(res.stdout, '', 'refused before the start line');
    assert.deepEqual(hashTree(s.out), before, 'nothing written');
  });

  it('defect 8: a sweep folder that is a file', async () => {
    const { spec, out } = scratch(FIXTURE_SPEC);
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'tiny'), 'a file');
    const res = await run(['run', spec, '--out', out]);
    assert.equal(res.code, 2);
    assert.match(oneLine(res), /^bnx: \S+tiny: exists and is not a directory \(it is where this spec's runs go\)/);
    assert.deepEqual(fs.readdirSync(out), ['tiny']);
  });

  it('defect 8: a run folder that is a file: nothing written to sweep.json', async () => {
    const s = copySweep(fixture());
    const before = fs.readFileSync(path.join(s.dir, 'sweep.json'));
    fs.rmSync(s.runs[1], { recursive: true });
    fs.writeFileSync(s.runs[1], 'a file');
    const res = await run(['run', s.spec, '--out', s.out]);
    assert.equal(res.code, 2);
    assert.match(oneLine(res), /norm=batch_\w+: exists and is not a directory \(the folder of run norm=batch_\w+\)/);
    assert.deepEqual(fs.readFileSync(path.join(s.dir, 'sweep.json')), before);
  });
});

describe('defect 9: plots and diffs of what cannot be drawn or compared', { concurrency: 3 }, () => {
  it("defect 9: plot --metric '' is refused", async () => {
    const res = await run(['plot', fixture().dir, '--metric', '', '--term']);
    assert.equal(res.code, 2);
    assert.match(
      oneLine(res),
      /^bnx: --metric '': names no metric; allowed: train_loss, train_acc, val_loss, val_acc, lr$/,
    );
  });

  it('defect 9: an all-diverged sweep: plot says there is nothing to draw (exit 2); report writes its page without charts of NaN', async () => {
    const diverging = TINY_SPEC.replace('hidden: [16]', 'hidden: [32, 32]\n  activation: relu\n  init: he_normal')
      .replace('lr: 0.5', 'lr: 1e30')
      .replace('log_every: 10', 'log_every: 1000')
      .replace('eval_every: 20', 'eval_every: 1000');
    const s = trainSweepAllDiverged(`${diverging}grid:\n  seed: [1, 2]\n`);
    for (const args of [
      ['plot', s, '--term'],
      ['plot', s, '--x', 'seed', '--term'],
      ['plot', s, '--metric', 'val_loss,train_acc', '-o', path.join(s, 'p.svg')],
    ]) {
      const res = await run(args);
      assert.equal(res.code, 2, res.stderr);
      assert.match(oneLine(res), /: nothing to draw: no run has a finite .* \(every run diverged\)$/);
    }
    const report = await run(['report', s]);
    assert.equal(report.code, 0, report.stderr);
    assert.equal(report.stderr, '');
    const html = fs.readFileSync(path.join(s, 'report.html'), 'utf8');
    assert.doesNotMatch(html, /NaN/);
    assert.match(
      html,
      /No charts: no run logged a finite loss or accuracy \(every run diverged before its first logged step\)/,
    );
  });

  it('defect 9: diff of runs from different datasets says so', async () => {
    const s = copySweep(fixture());
    const other = path.join(s.out, 'other');
    fs.cpSync(s.runs[1], other, { recursive: true });
    const record = JSON.parse(fs.readFileSync(path.join(other, 'run.json'), 'utf8'));
    record.config.data.dataset = 'mnist';
    fs.writeFileSync(path.join(other, 'run.json'), JSON.stringify(record));
    const res = await run(['diff', s.runs[0], other]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^note: A trained on synthetic and B on mnist: different datasets/);
    const json = await run(['diff', s.runs[0], other, '--json']);
    assert.equal(JSON.parse(json.stdout).notes.length, 1);
  });
});

/** Trains a spec whose every run diverges; returns its sweep folder. */
function trainSweepAllDiverged(text: string): string {
  const { spec, out } = scratch(text);
  const res = bnx(['run', spec, '--out', out]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal((res.stdout.match(/^ {2}diverged /gm) ?? []).length, 2, res.stdout);
  return path.join(out, 'tiny');
}

describe('the rule: no stack trace reaches a user', () => {
  it('an unexpected error is one line naming the crash log, which holds the trace', () => {
    // A bug stands in: the folder listing throws what no bnx code expects.
    const cache = tmpDir('bnx-cache-');
    const script = `
      import fs from 'node:fs';
      const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))});
      fs.statSync = () => { throw new TypeError('cannot read properties of a test double'); };
      await main(['node', 'bnx', 'ls', ${JSON.stringify(cache)}]);
    `;
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, BNX_CACHE_DIR: cache },
    });
    assert.equal(res.status, 70);
    assert.match(
      oneLine(res),
      /^bnx: internal error: cannot read properties of a test double \(the full trace is in (\S+bnx-crash-\S+\.log)\); please report it$/,
    );
    const log = /the full trace is in (\S+)\)/.exec(res.stderr)![1];
    assert.equal(path.dirname(log), cache);
    assert.match(
      fs.readFileSync(log, 'utf8'),
      /command: bnx ls[\s\S]*TypeError: cannot read properties of a test double\n\s+at /,
    );
  });

  it('the stack-trace check catches a Node trace', () => {
    const trace = 'node:fs:1\nError: ENOENT\n    at Object.openSync (node:fs:573:18)\n    at main (/x.js:1:1)\n';
    assert.throws(() => assertNoStackTrace(trace), /printed a stack trace/);
    assert.doesNotThrow(() => assertNoStackTrace('bnx: x: at step 3 the loss diverged\n'));
  });
});

describe('defect 2: empty, garbage and stale lock files', () => {
  // A lock whose owner cannot be read (left empty by a full disk while it was taken, or garbage) is
  // stale at once (src/store/lock.ts): taken over, said in one line, never "running elsewhere".
  it('defect 2: an empty .sweep.lock (a full disk while taking it) is stale: the run goes on and says so', () => {
    const s = copySweep(fixture());
    fs.writeFileSync(path.join(s.dir, '.sweep.lock'), '');
    const res = bnx(['run', s.spec, '--out', s.out], ROOT, { timeout: 10_000 });
    assert.equal(res.code, 0, res.stderr);
    assert.match(
      oneLine(res),
      /^bnx: stale lock \S+\/\.sweep\.lock \(its owner cannot be read: an empty file\): taken over$/,
    );
    assert.equal(fs.existsSync(path.join(s.dir, '.sweep.lock')), false, 'released after use');
  });

  it('defect 2: a garbage run lock makes the run stale, not "running in another process"', () => {
    const s = copySweep(fixture());
    const record = JSON.parse(fs.readFileSync(path.join(s.runs[0], 'run.json'), 'utf8'));
    fs.writeFileSync(path.join(s.runs[0], 'run.json'), JSON.stringify({ ...record, status: 'interrupted' }));
    fs.writeFileSync(path.join(s.runs[0], '.lock'), 'x\u0000{');
    const res = bnx(['run', s.spec, '--out', s.out], ROOT, { timeout: 10_000 });
    assert.equal(res.code, 0, res.stderr);
    assert.doesNotMatch(res.stdout, /running in another process/);
    assert.match(res.stdout, /done norm=none_/);
    assert.match(
      oneLine(res),
      new RegExp(
        `^bnx: stale lock \\S+${path.basename(s.runs[0])}/\\.lock \\(its owner cannot be read: not a lock record\\): taken over$`,
      ),
    );
  });
});
