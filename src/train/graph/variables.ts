import type { GraphBuilder, GraphVariable } from './graph-def.js';
import { F32 } from './graph-def.js';

const isStatistic = (name: string) => name.endsWith('/moving_mean') || name.endsWith('/moving_variance');

/**
 * What the signatures need of a compiler's variables: names and shapes, and a read and a handle
 * each. GraphVariables is one; the fused compiler's member-stacked variables are another.
 */
export interface VariableAccess {
  readonly list: readonly GraphVariable[];
  read(name: string): string;
  handle(name: string): string;
}

/** The model's variables (resource handles and one read each), in the order they were added. */

export class GraphVariables implements VariableAccess {
  readonly list: GraphVariable[] = [];
  private readonly handles = new Map<string, string>();
  private readonly reads = new Map<string, string>();

  constructor(private readonly g: GraphBuilder) {}

  add(name: string, shape: number[]): string {
    const h = this.g.op('VarHandleOp', `var/${name}`, [], {
      dtype: F32,
      shape: { shape },
      shared_name: { s: name },
      container: { s: '' },
    });
    this.handles.set(name, h);
    this.reads.set(name, this.g.op('ReadVariableOp', `read/${name}`, [h], { dtype: F32 }));
    this.list.push({ name, shape });
    return name;
  }

  /** The variable's value before the step's updates. */
  read(name: string): string {
    return this.reads.get(name) as string;
  }

  handle(name: string): string {
    return this.handles.get(name) as string;
  }

  shape(name: string): number[] {
    return (this.list.find((v) => v.name === name) as GraphVariable).shape;
  }

  /** What the optimizer updates: every variable but the inference statistics. */
  get trainable(): string[] {
    return this.list.map((v) => v.name).filter((n) => !isStatistic(n));
  }

  /** Control inputs on every read: an update carrying them runs after the step read its variables. */
  get afterReads(): string[] {
    return [...this.reads.values()].map((r) => `^${r}`);
  }
}
