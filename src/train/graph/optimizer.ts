import type { RunConfig } from '../../spec/types.js';
import { F32, I32, type GraphBuilder } from './graph-def.js';
import type { GraphVariables } from './variables.js';

/**
 * Adam as tf.train.adam computes it (tfjs-core's AdamOptimizer), at step t = 1, 2, ...:
 *   m = b1 m + c1 g,  v = b2 v + c2 g^2,  var -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
 * with c1 = 1 - b1 and c2 = 1 - b2 taken in double precision, then rounded to float32.
 * ResourceApplyAdam's kernel computes m += (g - m) c1', v += (g^2 - v) c2' with c' = 1 - float32(b)
 * in float32 (so its m and v are those above times c'/c: 1 - 0.999 differs from 1 - float32(0.999)
 * by 5e-5 relative), and var -= lr' sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps'), epsilon added
 * to the uncorrected sqrt(v). Feeding it
 *   lr' = lr (c1/c1') / sqrt(c2/c2'),  eps' = eps sqrt(1 - b2^t) / sqrt(c2/c2')
 * makes its update tf.train.adam's exactly (up to round-off). b1^t and b2^t live in the
 * `adam/beta*_power` variables (float32 products, as tfjs's accBeta*); `advance` multiplies them by
 * b1, b2 after the step (its controls: the updates that read them).
 */
function adamStepInputs(
  g: GraphBuilder,
  powers: { beta1: string; beta2: string },
  adam: RunConfig['train']['adam'],
  lr: string,
) {
  const f32 = Math.fround;
  const ratio = (b: number) => f32(1 - b) / f32(1 - f32(b)); // c / c'
  const beta1 = g.scalar('adam/beta1', adam.beta1);
  const beta2 = g.scalar('adam/beta2', adam.beta2);
  const beta1Power = g.op('ReadVariableOp', 'adam/read/beta1_power', [powers.beta1], { dtype: F32 });
  const beta2Power = g.op('ReadVariableOp', 'adam/read/beta2_power', [powers.beta2], { dtype: F32 });
  const scaledLr = g.op(
    'Mul',
    'adam/lr',
    [lr, g.scalar('adam/lr_scale', ratio(adam.beta1) / Math.sqrt(ratio(adam.beta2)))],
    { T: F32 },
  );
  const sqrtBiasCorrection2 = g.op(
    'Sqrt',
    'adam/sqrt_bias_correction2',
    [g.op('Sub', 'adam/bias_correction2', [g.scalar('adam/one', 1), beta2Power], { T: F32 })],
    { T: F32 },
  );
  const epsilon = g.op(
    'Mul',
    'adam/epsilon',
    [g.scalar('adam/eps_scale', adam.epsilon / Math.sqrt(ratio(adam.beta2))), sqrtBiasCorrection2],
    { T: F32 },
  );
  const advance = (after: string[]) =>
    (
      [
        ['beta1', beta1Power, beta1],
        ['beta2', beta2Power, beta2],
      ] as const
    ).map(([k, power, beta]) =>
      g.op(
        'AssignVariableOp',
        `adam/advance/${k}_power`,
        [powers[k], g.op('Mul', `adam/next/${k}_power`, [power, beta], { T: F32 }), ...after],
        { dtype: F32 },
      ),
    );
  return { beta1Power, beta2Power, beta1, beta2, lr: scaledLr, epsilon, advance };
}

/**
 * The run's optimizer (`train.optimizer` sgd with or without `train.momentum`, or adam) as update
 * ops on the trainable variables, with the same arithmetic as tf.train.sgd / momentum / adam:
 * ResourceApplyGradientDescent, ResourceApplyMomentum (accum = k accum + g; var -= lr accum) or
 * ResourceApplyAdam (see adamStepInputs). Its slots (momentum's accumulator, Adam's moments and
 * beta powers) are resource variables that `initAssigns` resets.
 */
export class GraphOptimizer {
  private readonly adam: boolean;
  private readonly momentum: number;
  /** `<variable>/<slot>` -> handle and shape. */
  private readonly slots = new Map<string, { handle: string; shape: number[] }>();
  /** Adam's beta1^t and beta2^t (t: the step being taken), set to beta1, beta2 by `init`. */
  private readonly betaPowers: { beta1: string; beta2: string } | null;

  constructor(
    private readonly g: GraphBuilder,
    private readonly config: RunConfig,
    private readonly vars: GraphVariables,
  ) {
    this.adam = config.train.optimizer === 'adam';
    this.momentum = config.train.momentum;
    const slotKinds = this.adam ? ['m', 'v'] : this.momentum > 0 ? ['momentum'] : [];
    for (const name of vars.trainable) {
      const shape = vars.shape(name);
      for (const kind of slotKinds) {
        const key = `${name}/${kind}`;
        this.slots.set(key, {
          handle: g.op('VarHandleOp', `slot/${key}`, [], {
            dtype: F32,
            shape: { shape },
            shared_name: { s: key },
            container: { s: '' },
          }),
          shape,
        });
      }
    }
    const scalarVariable = (name: string) =>
      g.op('VarHandleOp', name, [], {
        dtype: F32,
        shape: { shape: [] },
        shared_name: { s: name },
        container: { s: '' },
      });
    this.betaPowers = this.adam
      ? { beta1: scalarVariable('adam/beta1_power'), beta2: scalarVariable('adam/beta2_power') }
      : null;
  }

  private slot(name: string, kind: string): string {
    return (this.slots.get(`${name}/${kind}`) as { handle: string }).handle;
  }

  /** `init`'s assignments of the optimizer state: zero slots, beta powers at beta1, beta2. */
  initAssigns(zero: string): string[] {
    const g = this.g;
    const assigns: string[] = [];
    for (const [key, { handle, shape }] of this.slots) {
      const zeros = g.op('Fill', `init/zeros/${key}`, [g.constInt(`init/shape/${key}`, shape, [shape.length]), zero], {
        T: F32,
        index_type: I32,
      });
      assigns.push(g.op('AssignVariableOp', `init/assign_slot/${key}`, [handle, zeros], { dtype: F32 }));
    }
    if (this.betaPowers) {
      const { beta1, beta2 } = this.config.train.adam;
      assigns.push(
        g.op(
          'AssignVariableOp',
          'init/assign/adam/beta1_power',
          [this.betaPowers.beta1, g.scalar('init/adam/beta1', beta1)],
          { dtype: F32 },
        ),
      );
      assigns.push(
        g.op(
          'AssignVariableOp',
          'init/assign/adam/beta2_power',
          [this.betaPowers.beta2, g.scalar('init/adam/beta2', beta2)],
          { dtype: F32 },
        ),
      );
    }
    return assigns;
  }

  /**
   * The step's updates: one per trainable variable (its gradient in `grads`), then `statistics`'
   * (the inference statistics' assignments, given the control inputs every update carries), then
   * Adam's beta powers advanced after them all. Every update runs after every variable read, so
   * the step computes its gradients from the weights before it.
   */
  updates(grads: Map<string, string>, lr: string, statistics: (afterReads: string[]) => string[]): string[] {
    const g = this.g;
    const afterReads = this.vars.afterReads;
    const updates: string[] = [];
    const momentumConst = this.momentum > 0 ? g.scalar('train/momentum', this.momentum) : null;
    const adamInputs = this.betaPowers ? adamStepInputs(g, this.betaPowers, this.config.train.adam, lr) : null;
    for (const name of this.vars.trainable) {
      const grad = grads.get(name);
      if (!grad) throw new Error(`graph compiler: no gradient for ${name}`);
      const handle = this.vars.handle(name);
      if (adamInputs) {
        const { beta1Power, beta2Power, beta1, beta2, epsilon } = adamInputs;
        updates.push(
          g.op(
            'ResourceApplyAdam',
            `update/${name}`,
            [
              handle,
              this.slot(name, 'm'),
              this.slot(name, 'v'),
              beta1Power,
              beta2Power,
              adamInputs.lr,
              beta1,
              beta2,
              epsilon,
              grad,
              ...afterReads,
            ],
            { T: F32, use_locking: { b: false }, use_nesterov: { b: false } },
          ),
        );
      } else if (momentumConst) {
        updates.push(
          g.op(
            'ResourceApplyMomentum',
            `update/${name}`,
            [handle, this.slot(name, 'momentum'), lr, grad, momentumConst, ...afterReads],
            { T: F32, use_locking: { b: false }, use_nesterov: { b: false } },
          ),
        );
      } else {
        updates.push(
          g.op('ResourceApplyGradientDescent', `update/${name}`, [handle, lr, grad, ...afterReads], {
            T: F32,
            use_locking: { b: false },
          }),
        );
      }
    }
    updates.push(...statistics(afterReads));
    // t -> t + 1 once every ResourceApplyAdam has read beta1^t and beta2^t.
    if (adamInputs) updates.push(...adamInputs.advance(updates.map((u) => `^${u}`)));
    return updates;
  }
}

/** Which variables a layer's normalization has: see `addNormVariables`. */
