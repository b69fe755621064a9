/**
 * One worker of bench.ts's multi-process sweep row, as `bnx run --workers N` would start it: the
 * parent sets this process's TensorFlow inter-op pool through the environment (workerThreadEnv), and
 * it trains its shard (`i/N`, round-robin, as `--shard`) of the paper spec's learning-rate sweep,
 * grouped as `bnx run` groups it.
 *
 *   node dist/bench/sweep-worker.js <norm> <steps> <shard i/N> <lr,lr,...>
 *
 * It loads the backend and the dataset, prints `ready`, waits for a line on stdin (so that every
 * worker starts training at once, and the parent times training, not process start-up), trains,
 * and prints `done`.
 */
import readline from 'node:readline';
import { loadDataset } from '../src/data/index.js';
import { parseShard, selectShard } from '../src/spec/shard.js';
import { initBackend } from '../src/train/backend.js';
import { trainingGroups } from '../src/train/groups.js';
import { trainGroup } from '../src/train/loop.js';
import { paperConfigs, sweepConfig } from './paper.js';

const [norm, stepsText, shardText, lrsText] = process.argv.slice(2);
const steps = Number(stepsText);
await initBackend('tensorflow');
const paper = paperConfigs()[norm as 'none' | 'batch'];
const data = loadDataset(paper.data);
const configs = selectShard(
  lrsText.split(',').map((lr) => sweepConfig(paper, 'graph', Number(lr), steps)),
  parseShard(shardText),
);

console.log('ready');
await new Promise<void>((resolve) => readline.createInterface({ input: process.stdin }).once('line', () => resolve()));
for (const group of trainingGroups(configs)) {
  const members = group.map((i) => configs[i]);
  await trainGroup(members, data, { members: members.map(() => ({})) });
}
console.log('done');
