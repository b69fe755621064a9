import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as protobuf from 'protobufjs';
import { SAVED_MODEL_PROTO } from '../../util/proto/saved-model-proto.js';

/** TensorFlow DataType enum values (types.proto) that bnx graphs use. */
export const DT = { float: 1, int32: 3, bool: 10, resource: 20 } as const;
export type DType = (typeof DT)[keyof typeof DT];

/** An AttrValue (attr_value.proto): exactly one field set. `shape` -1 is an unknown dimension. */
export type Attr =
  | { s: string }
  | { i: number }
  | { f: number }
  | { b: boolean }
  | { type: DType }
  | { shape: number[] }
  | { tensor: TensorValue }
  | { list: { i?: number[]; type?: DType[]; shape?: number[][] } };

/** A constant tensor: float32 or int32 values, row-major. */
export interface TensorValue {
  dtype: DType;
  shape: number[];
  values: Float32Array | Int32Array;
}

export interface NodeDef {
  name: string;
  op: string;
  /** `node:k` for output k (`node` = `node:0`), `^node` for a control input. */
  input: string[];
  attr: Record<string, Attr>;
}

/** One tensor of a signature: the graph tensor (`node:0`), its dtype and shape (-1: any size). */
export interface TensorSpec {
  tensor: string;
  dtype: DType;
  shape: number[];
}

export interface Signature {
  inputs: Record<string, TensorSpec>;
  outputs: Record<string, TensorSpec>;
}

/** A variable of the compiled graph, by its model's `namedWeights` name (`hidden1/kernel`, `conv1/g`, `head/bias`, ...). */
export interface GraphVariable {
  name: string;
  shape: number[];
}

/** A compiled run: its graph and the signatures bnx calls (see `compileRun`). */
export interface CompiledGraph {
  nodes: NodeDef[];
  /**
   * `init`: one input per model variable (by name); sets them and zeroes the optimizer's slots.
   * `train_step`: x [N, F] float32, labels [N] int32, lr [] -> loss (mean cross-entropy before the
   *   update) and correct (count of argmax = label), both taken after every update ran.
   * `eval`: x, labels -> loss_sum (sum of per-example cross-entropies) and correct, inference mode.
   * `read`: every model variable by name.
   * With batch norm or mean-only batch norm and `inference: population` (Algorithm 2),
   * `train_step` leaves the inference statistics alone, and two more signatures serve the estimate:
   * `batch_stats`: x -> `<layer>/mean` (and `<layer>/variance`, batch norm) per layer: the batch
   *   mean and the unbiased batch variance m/(m-1) s2 of a training-mode forward pass, nothing updated;
   * `set_stats`: one input per `moving_mean` / `moving_variance` variable -> sets them.
   * With noisy batch norm (`model.batch_norm.noise` > 0), `train_step` takes the step's noise:
   * `noise/<layer>/scale` and `noise/<layer>/shift` [C] per batch-norm layer; `eval` and
   * `batch_stats` are noise-free, as the eager layer's inference mode and population estimates.
   */
  signatures: Record<'init' | 'train_step' | 'eval' | 'read', Signature> &
    Partial<Record<'batch_stats' | 'set_stats', Signature>>;
  variables: GraphVariable[];
  /** Noisy batch norm only: its layers (`hidden1`, `conv1`, ...) in the model's order, i.e. the order of its batch-norm layers. */
  noise?: { layer: string; channels: number }[];
}

/**
 * Builds a GraphDef node by node. Node names are unique: `op()` returns the name it used (the
 * requested one, or with a numeric suffix), to be passed as the input of later nodes.
 */
export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  private readonly names = new Set<string>();

  op(op: string, name: string, input: string[], attr: Record<string, Attr> = {}): string {
    let unique = name;
    for (let k = 1; this.names.has(unique); k++) unique = `${name}_${k}`;
    this.names.add(unique);
    this.nodes.push({ name: unique, op, input, attr });
    return unique;
  }

  constFloat(name: string, values: number[] | Float32Array, shape: number[]): string {
    return this.op('Const', name, [], {
      dtype: { type: DT.float },
      value: { tensor: { dtype: DT.float, shape, values: Float32Array.from(values) } },
    });
  }

  constInt(name: string, values: number[], shape: number[]): string {
    return this.op('Const', name, [], {
      dtype: { type: DT.int32 },
      value: { tensor: { dtype: DT.int32, shape, values: Int32Array.from(values) } },
    });
  }

  scalar(name: string, value: number): string {
    return this.constFloat(name, [value], []);
  }
}

function shapeProto(shape: number[]) {
  return { dim: shape.map((size) => ({ size })) };
}

function tensorProto(t: TensorValue) {
  const content = new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength);
  return { dtype: t.dtype, tensorShape: shapeProto(t.shape), tensorContent: content };
}

function attrProto(a: Attr): Record<string, unknown> {
  if ('shape' in a) return { shape: shapeProto(a.shape) };
  if ('tensor' in a) return { tensor: tensorProto(a.tensor) };
  if ('s' in a) return { s: Buffer.from(a.s, 'utf8') };
  if ('list' in a)
    return { list: { i: a.list.i ?? [], type: a.list.type ?? [], shape: (a.list.shape ?? []).map(shapeProto) } };
  return a;
}

let savedModelType: protobuf.Type | null = null;
function savedModelMessage(): protobuf.Type {
  // Loaded on first use: `bnx --help` and `bnx plan` stay fast.
  const pb = createRequire(import.meta.url)('protobufjs') as typeof protobuf;
  savedModelType ??= pb.parse(SAVED_MODEL_PROTO, { keepCase: false }).root.lookupType('tensorflow.SavedModel');
  return savedModelType;
}

/** TF1-style producer version of the graphs bnx writes (the ops it uses all exist at this version). */
const GRAPH_PRODUCER = 1994;

/** The bytes of a `saved_model.pb`: one MetaGraphDef tagged `serve` holding the graph and the signatures. */
export function encodeSavedModel(nodes: NodeDef[], signatures: Record<string, Signature>): Uint8Array {
  const tensorInfo = (t: TensorSpec) => ({ name: t.tensor, dtype: t.dtype, tensorShape: shapeProto(t.shape) });
  const mapOf = (m: Record<string, TensorSpec>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, tensorInfo(v)]));
  const message = {
    savedModelSchemaVersion: 1,
    metaGraphs: [
      {
        metaInfoDef: { tags: ['serve'] },
        graphDef: {
          node: nodes.map((n) => ({
            name: n.name,
            op: n.op,
            input: n.input,
            attr: Object.fromEntries(Object.entries(n.attr).map(([k, v]) => [k, attrProto(v)])),
          })),
          versions: { producer: GRAPH_PRODUCER },
        },
        signatureDef: Object.fromEntries(
          Object.entries(signatures).map(([k, s]) => [
            k,
            { inputs: mapOf(s.inputs), outputs: mapOf(s.outputs), methodName: 'tensorflow/serving/predict' },
          ]),
        ),
      },
    ],
  };
  const type = savedModelMessage();
  const err = type.verify(message);
  if (err) throw new Error(`SavedModel message: ${err}`);
  return type.encode(type.fromObject(message)).finish();
}

/** Decodes a `saved_model.pb` (for tests and debugging). */
export function decodeSavedModel(bytes: Uint8Array): Record<string, unknown> {
  const type = savedModelMessage();
  return type.toObject(type.decode(bytes), { enums: String, longs: Number, bytes: Array, defaults: false }) as Record<
    string,
    unknown
  >;
}

/** Writes `dir`/saved_model.pb and an empty `dir`/variables/ (the variables live in the session, set by `init`). */
export function writeSavedModel(dir: string, nodes: NodeDef[], signatures: Record<string, Signature>): void {
  fs.mkdirSync(path.join(dir, 'variables'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'saved_model.pb'), encodeSavedModel(nodes, signatures));
}

export const F32: Attr = { type: DT.float };
export const I32: Attr = { type: DT.int32 };
/** A signature's input or output: the node's first output, its dtype and shape. */
export const spec = (tensor: string, dtype: number, shape: number[]): TensorSpec => ({
  tensor: `${tensor}:0`,
  dtype: dtype as TensorSpec['dtype'],
  shape,
});

/** Inference statistics (never updated by the optimizer): batch norm's and mean-only batch norm's. */
