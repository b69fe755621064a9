import { BatchNorm, MeanOnlyBatchNorm } from '../layers/batch-norm.js';
import { GroupNorm, InstanceNorm } from '../layers/group-norm.js';
import { LayerNorm } from '../layers/layer-norm.js';
import type { NormLayer } from '../layers/norm.js';
import { NoisyBatchNorm, noiseSeed } from '../layers/noisy-batch-norm.js';
import type { ModelConfig } from '../spec/types.js';
import type { NormPlan } from './plan.js';

/**
 * The eager layer of a planned normalization, with the config's arguments: the one place a
 * `model.norm` name becomes a layer (the graph compiler's counterpart: src/train/graph/norms.ts).
 * `seed`: the run's seed (noisy batch norm's draws).
 */
export function createNorm(
  plan: NormPlan,
  config: ModelConfig,
  channels: number,
  name: string,
  seed: number,
): NormLayer {
  const bn = config.batch_norm;
  switch (plan.kind) {
    case 'batch': {
      const args = {
        channels,
        eps: bn.eps,
        momentum: bn.momentum,
        inference: bn.inference,
        gradient: bn.gradient,
        name,
      };
      return bn.noise > 0
        ? new NoisyBatchNorm({ ...args, noise: { strength: bn.noise, seed: noiseSeed(seed, plan.index) } })
        : new BatchNorm(args);
    }
    case 'mean_only_batch':
      return new MeanOnlyBatchNorm({ channels, momentum: bn.momentum, inference: bn.inference, name });
    case 'layer':
      return new LayerNorm({ channels, eps: config.layer_norm.eps, name });
    case 'group':
      return new GroupNorm({ channels, groups: config.group_norm.groups, eps: config.group_norm.eps, name });
    case 'instance':
      return new InstanceNorm({ channels, eps: config.group_norm.eps, name });
  }
}
