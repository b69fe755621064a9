export { readIdx, writeIdx, type IdxFile } from './idx.js';
export { loadDataset, mnistDir, gather, MNIST_FILES, type Dataset, type Split } from './datasets.js';
export { EpochBatcher } from './batches.js';
