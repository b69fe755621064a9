/** Softmax cross-entropy and the correct count (the eager counterparts: crossEntropy and correctCount in src/train/evaluate.ts). */
import { DT, F32, I32, type GraphBuilder } from '../graph-def.js';

export function lossAndCorrect(
  g: GraphBuilder,
  scope: string,
  logits: string,
  labels: string,
  axis0: string,
  axis1: string,
): { ce: string; correct: string } {
  const ce = g.op('SparseSoftmaxCrossEntropyWithLogits', `${scope}/xent`, [logits, labels], { T: F32, Tlabels: I32 });
  const argmax = g.op('ArgMax', `${scope}/argmax`, [logits, axis1], { T: F32, Tidx: I32, output_type: I32 });
  const equal = g.op('Equal', `${scope}/equal`, [argmax, labels], { T: I32 });
  const hits = g.op('Cast', `${scope}/hits`, [equal], { SrcT: { type: DT.bool }, DstT: F32 });
  const correct = g.op('Sum', `${scope}/correct`, [hits, axis0], { T: F32, Tidx: I32, keep_dims: { b: false } });
  return { ce, correct };
}

/** The training loss (mean cross-entropy over the batch), the correct count and dL/dlogits = (softmax - onehot) / N. */

export function trainingLoss(
  g: GraphBuilder,
  logits: string,
  labels: string,
  axis0: string,
  axis1: string,
): { loss: string; correct: string; dLogits: string } {
  const { ce, correct } = lossAndCorrect(g, 'train', logits, labels, axis0, axis1);
  const loss = g.op('Mean', 'train/loss', [ce, axis0], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const n = g.op('Cast', 'train/n', [g.op('Size', 'train/size', [labels], { T: I32, out_type: I32 })], {
    SrcT: I32,
    DstT: F32,
  });
  const invN = g.op('Reciprocal', 'train/inv_n', [n], { T: F32 });
  const dLogits = g.op('Mul', 'grad/logits', [`${ce}:1`, invN], { T: F32 });
  return { loss, correct, dLogits };
}

/** The activation's forward op on z (`linear`: z itself), named `<scope>/<activation>`. */
