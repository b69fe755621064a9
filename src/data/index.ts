export { readIdx, writeIdx, type IdxFile } from './idx.js';
export { readCifarBatch, readCifarBatches, writeCifarBatch, type CifarBatch } from './cifar.js';
export { loadDataset, mnistDir, gather, MNIST_FILES, type Dataset, type Split } from './datasets.js';
export {
  locateDataset,
  findInstalled,
  searchedPlaces,
  datasetCacheDir,
  SOURCES,
  CIFAR10_FILES,
  type FileDataset,
  type DatasetSource,
  type Located,
} from './sources.js';
export { download, untarMembers } from './download.js';
export { Augmenter, augments, augmentSeed } from './augment.js';
export { EpochBatcher } from './batches.js';
