import type { CompiledGraph } from './graph-def.js';
import type { Attr, NodeDef, Signature, TensorSpec } from './graph-def.js';

/**
 * The signatures of a group's graph: those of its members' graphs, each member's inputs and
 * outputs under `m<k>/<name>` (see `memberKey`). `batch_stats` and `set_stats` hold the members
 * that have them (`inference: population`), and are absent when none has.
 */
export type GroupSignatureName = 'init' | 'train_step' | 'eval' | 'read' | 'batch_stats' | 'set_stats';

export interface GroupGraph {
  nodes: NodeDef[];
  signatures: Record<'init' | 'train_step' | 'eval' | 'read', Signature> &
    Partial<Record<'batch_stats' | 'set_stats', Signature>>;
  /** Each member's own graph, as compiled for it alone (its variables, its noise inputs). */
  members: CompiledGraph[];
}

/** Member k's name for a node, a signature key or a variable's shared name: `m<k>/<name>`. */
export const memberKey = (member: number, name: string): string => `m${member}/${name}`;

/**
 * The graphs of a group's members side by side in one graph, so that one native call steps them
 * all. Each member's graph is the one compiled for it alone, renamed under `m<k>/` and nothing
 * else: no op is shared between members and no op sees another shape than in the member's own
 * graph. This is what makes a run's numbers independent of the group it trains in (alone, with
 * other learning rates or seeds, at any position): a kernel's result depends on its inputs'
 * values and shapes (and the thread pool, see src/train/backend.ts), and those are the same.
 * Ops that took several members at once (a wide MatMul, a Sum over members) changed with the
 * group: their reduction order depends on the member's offset.
 */
export function groupGraph(members: CompiledGraph[]): GroupGraph {
  if (members.length === 0) throw new Error('groupGraph: no members');
  const nodes: NodeDef[] = [];
  const signatures: Partial<Record<GroupSignatureName, Signature>> = {};
  members.forEach((graph, k) => {
    for (const node of graph.nodes) nodes.push(renameNode(node, k));
    for (const [name, sig] of Object.entries(graph.signatures) as [GroupSignatureName, Signature][]) {
      const merged = (signatures[name] ??= { inputs: {}, outputs: {} });
      for (const [key, t] of Object.entries(sig.inputs)) merged.inputs[memberKey(k, key)] = renameSpec(t, k);
      for (const [key, t] of Object.entries(sig.outputs)) merged.outputs[memberKey(k, key)] = renameSpec(t, k);
    }
  });
  return { nodes, signatures: signatures as GroupGraph['signatures'], members };
}

function renameNode(node: NodeDef, k: number): NodeDef {
  const input = node.input.map((i) => (i.startsWith('^') ? `^${memberKey(k, i.slice(1))}` : memberKey(k, i)));
  // Resource variables are found by shared_name: each member needs its own.
  const attr: Record<string, Attr> = { ...node.attr };
  const shared = attr.shared_name;
  if (shared && 's' in shared) attr.shared_name = { s: memberKey(k, shared.s) };
  return { name: memberKey(k, node.name), op: node.op, input, attr };
}

function renameSpec(t: TensorSpec, k: number): TensorSpec {
  return { ...t, tensor: memberKey(k, t.tensor) };
}
