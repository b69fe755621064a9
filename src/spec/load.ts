import fs from 'node:fs';
import type { ErrorObject } from 'ajv';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { InputError } from '../util/errors.js';
import { configKeyPaths, DEFAULT_CONFIG, SPEC_ONLY_KEYS, SPEC_SCHEMA, schemaAt } from './schema.js';
import { specValidators } from './validators.js';
import { INSTRUMENT_NAMES, type RunConfig } from './types.js';

/** One axis of the sweep: a configuration key and the values it takes, each with where it was written. */
export interface GridAxis {
  key: string;
  values: unknown[];
  /** Where each value was written (`spec.yaml:12:7` or `--set train.lr`), for error messages. */
  where: string[];
}

/** A loaded, shape-checked spec: the base configuration (only what the file states) and the axes. */
export interface Spec {
  file: string;
  name: string;
  description: string;
  /** The file's configuration keys, without grid/seeds/description. */
  base: Record<string, unknown>;
  /** Base values set from the command line (`--set key=value` with one value), by key path. */
  assignments: Map<string, { value: unknown; where: string }>;
  /** Axes in sweep order: the first varies slowest. */
  grid: GridAxis[];
  /** Locates a key path of the file (`train.lr`) as `file:line:col`. */
  locate(keyPath: string, atKey?: boolean): string;
}

// `instruments` itself is a key too: `--set instruments=[ics,eval_gap]` (see instrumentsFromList).
const KEY_PATHS = [...configKeyPaths(), 'instruments'];

/** The largest spec file bnx reads: specs are a page of YAML; sweep.json keeps each distinct text once. */
export const MAX_SPEC_BYTES = 1024 * 1024;
/** Aliases a YAML document may expand: enough for anchors reused as intended, not for an alias bomb. */
const MAX_YAML_ALIASES = 1000;

const mebibytes = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 0)} MiB`;

const NAME_AXIS =
  'name is not a grid axis: it names the results folder, and every run of a spec shares it; ' +
  'run the spec once per name (--set name=other) or sweep a configuration key';

/** A YAML document as plain values; aliases that expand without bound (an alias bomb) are refused. */
function yamlToJs(doc: Document, where: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (e) {
    if (!(e instanceof ReferenceError)) throw e;
    throw new InputError(
      where,
      'YAML aliases expand too far (nested anchors that multiply, an alias bomb?); write the values out',
    );
  }
}

/** The first number that is not finite (.inf, -.inf, .nan, 1e400) in a parsed value, with its key path. */
function nonFinite(value: unknown, keyPath = ''): { path: string; value: number } | null {
  if (typeof value === 'number') return Number.isFinite(value) ? null : { path: keyPath, value };
  if (value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const found = nonFinite(v, keyPath ? `${keyPath}.${k}` : k);
    if (found) return found;
  }
  return null;
}

/** `grid.train.lr.2` -> `train.lr` (a value of that axis), `seeds.1` -> `seeds`: the key a user wrote. */
function shownKey(keyPath: string): string {
  if (keyPath.startsWith('grid.')) return keyPath.slice(5).replace(/(\.\d+)+$/, '');
  return keyPath.replace(/(\.\d+)+$/, '');
}

function notFiniteMessage(key: string, written: string): string {
  return `${key} is ${written}, not a finite number; every number in a spec must be finite`;
}

/** Reads and checks a spec file. Errors name `file:line:col` and what is allowed. */
export function loadSpec(file: string): Spec {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (stat.isDirectory()) throw new InputError(file, 'is a directory, expected a YAML spec file');
    if (stat.size > MAX_SPEC_BYTES)
      throw new InputError(
        file,
        `is ${mebibytes(stat.size)}; a spec is at most ${mebibytes(MAX_SPEC_BYTES)} (sweep large grids with --set, or split the spec)`,
      );
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(file, `cannot read spec file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const pos = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    throw new InputError(pos(err.pos[0]), `malformed YAML: ${err.message.split('\n')[0]}`);
  }
  const raw = yamlToJs(doc, file);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError(`${file}:1:1`, 'a spec must be a YAML mapping with at least `name:`');
  }
  const locate = (keyPath: string, atKey = false) => locateInDoc(doc, keyPath, atKey, pos) ?? file;
  const infinite = nonFinite(raw);
  if (infinite) {
    const node = nodeAt(doc, infinite.path);
    const written = node?.range ? text.slice(node.range[0], node.range[1]).trim() : String(infinite.value);
    throw new InputError(locate(infinite.path), notFiniteMessage(shownKey(infinite.path), written));
  }
  const rawSpec = raw as Record<string, unknown>;
  if (Array.isArray(rawSpec.instruments)) {
    rawSpec.instruments = instrumentsFromList(rawSpec.instruments, (i) => locate(`instruments.${i}`));
  }

  const validateSpecShape = specValidators().specShape;
  if (!validateSpecShape(raw)) {
    const err = pickError(validateSpecShape.errors ?? []);
    const keyPath = errorKeyPath(err);
    throw new InputError(locate(keyPath, err.keyword === 'additionalProperties'), describeError(err, raw));
  }
  const spec = raw as Record<string, unknown>;
  const grid: GridAxis[] = [];
  for (const [key, values] of Object.entries((spec.grid ?? {}) as Record<string, unknown[]>)) {
    if (axisKeys(key).includes('name')) throw new InputError(locate(`grid.${key}`, true), NAME_AXIS);
    const where = values.map((_, i) => locate(`grid.${key}.${i}`));
    checkAxis(
      key,
      values,
      () => locate(`grid.${key}`, true),
      (i) => where[i],
    );
    const taken = grid.flatMap((a) => axisKeys(a.key)).find((k) => axisKeys(key).includes(k));
    if (taken)
      throw new InputError(
        locate(`grid.${key}`, true),
        `${taken} is swept by two grid axes; give it one axis (or one linked axis such as "train.batch_size,train.lr")`,
      );
    grid.push({ key, values, where });
  }
  if (spec.seeds !== undefined) {
    if (grid.some((a) => axisKeys(a.key).includes('seed'))) {
      throw new InputError(locate('seeds', true), 'give either `seeds:` or a `seed` grid axis, not both');
    }
    const seeds = spec.seeds as number[];
    grid.push({ key: 'seed', values: seeds, where: seeds.map((_, i) => locate(`seeds.${i}`)) });
  }
  const base = Object.fromEntries(
    Object.entries(spec).filter(([k]) => !(SPEC_ONLY_KEYS as readonly string[]).includes(k)),
  );
  const train = (base.train ?? {}) as Record<string, unknown>;
  if (train.steps != null && train.epochs != null) {
    throw new InputError(locate('train.epochs', true), 'give train.steps or train.epochs, not both');
  }
  return {
    file,
    name: spec.name as string,
    description: (spec.description as string | undefined) ?? '',
    base,
    assignments: new Map(),
    grid,
    locate,
  };
}

/**
 * The list form of `instruments:`: names (`[ics, eval_gap]`) or one-key mappings with options
 * (`- smoothness: { every: 100 }`). Listed instruments are enabled, the others off; options not
 * given keep their defaults. `whereOf(i)` locates item i for errors.
 */
export function instrumentsFromList(list: unknown[], whereOf: (i: number) => string): Record<string, unknown> {
  const out = structuredClone(DEFAULT_CONFIG.instruments) as unknown as Record<string, Record<string, unknown>>;
  const names: readonly string[] = INSTRUMENT_NAMES;
  list.forEach((item, i) => {
    const isMapping =
      item !== null && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length === 1;
    const name = typeof item === 'string' ? item : isMapping ? Object.keys(item as object)[0] : null;
    if (name === null) {
      throw new InputError(
        whereOf(i),
        `an instruments entry is a name or a one-key mapping (name: { options }); instruments are ${names.join(', ')}`,
      );
    }
    if (!names.includes(name)) {
      const near = didYouMean(name, [...names]);
      throw new InputError(
        whereOf(i),
        `unknown instrument "${name}"${near ? ` (did you mean "${near}"?)` : ''}; instruments are ${names.join(', ')}`,
      );
    }
    const options = isMapping ? (item as Record<string, unknown>)[name] : {};
    if (options !== null && (typeof options !== 'object' || Array.isArray(options))) {
      throw new InputError(whereOf(i), `options of instrument ${name} must be a mapping such as { every: 100 }`);
    }
    out[name] = { ...out[name], ...(options as object | null), enabled: true };
  });
  return out;
}

/** A parsed `--set key=value[,value...]`. */
export interface Override {
  key: string;
  values: unknown[];
  where: string;
}

/**
 * Parses a Hydra-style override. `key=a,b,c` is a sweep over three values; `key=[a,b]` is one list
 * value; `key=[1,2],[3,4]` sweeps over two lists. Values are YAML scalars (`0.1`, `none`, `null`).
 */
export function parseOverride(arg: string): Override {
  const eq = arg.indexOf('=');
  const where = `--set ${eq > 0 ? arg.slice(0, eq) : arg}`;
  if (eq <= 0) throw new InputError(where, 'expected key=value (for example train.lr=0.1 or train.lr=0.1,0.5,2)');
  const key = arg.slice(0, eq).trim();
  for (const k of axisKeys(key)) checkKeyPath(k, () => where);
  const text = arg.slice(eq + 1);
  const parts = splitTopLevel(text);
  if (parts.some((p) => p.trim() === '')) {
    throw new InputError(where, `empty value in "${text}"; give one value, or a comma list to sweep`);
  }
  const values = parts.map((p) => {
    const doc = parseDocument(p, { prettyErrors: false });
    if (doc.errors.length > 0)
      throw new InputError(where, `cannot parse value "${p}": ${doc.errors[0].message.split('\n')[0]}`);
    const value = yamlToJs(doc, where);
    if (nonFinite(value)) throw new InputError(where, notFiniteMessage(key, p.trim()));
    return value;
  });
  if (values.length > 1 && axisKeys(key).includes('name')) throw new InputError(where, NAME_AXIS);
  checkAxis(
    key,
    values,
    () => where,
    () => where,
  );
  return { key, values, where };
}

/** Splits on commas that are not inside brackets or quotes. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * Applies command-line overrides on top of a spec. The command line wins: a single value replaces
 * the file's value and any grid axis on that key; a comma list replaces the axis, or adds a new
 * axis after the file's axes.
 */
export function applyOverrides(spec: Spec, overrides: Override[]): Spec {
  const grid = spec.grid.map((a) => ({ ...a }));
  const assignments = new Map(spec.assignments);
  for (const o of overrides) {
    const linked = grid.find((a) => a.key !== o.key && axisKeys(a.key).some((k) => axisKeys(o.key).includes(k)));
    if (linked) {
      throw new InputError(
        o.where,
        `${axisKeys(o.key).find((k) => axisKeys(linked.key).includes(k))} is swept in the linked grid axis "${linked.key}"; override that axis whole (--set ${linked.key}=[...],[...])`,
      );
    }
    const i = grid.findIndex((a) => a.key === o.key);
    if (o.values.length === 1) {
      if (i >= 0) grid.splice(i, 1);
      const keys = axisKeys(o.key);
      if (keys.length === 1) assignments.set(o.key, { value: o.values[0], where: o.where });
      else keys.forEach((k, j) => assignments.set(k, { value: (o.values[0] as unknown[])[j], where: o.where }));
    } else {
      const axis = { key: o.key, values: o.values, where: o.values.map(() => o.where) };
      if (i >= 0) grid[i] = axis;
      else grid.push(axis);
      assignments.delete(o.key);
    }
  }
  const name = assignments.get('name')?.value;
  return { ...spec, grid, assignments, name: typeof name === 'string' ? name : spec.name };
}

/**
 * The keys of a grid axis. `train.batch_size,train.lr` is a linked axis: its keys change together,
 * each value a list with one entry per key (`[2, 0.001]`), so a sweep can scale one key with another.
 */
export function axisKeys(axisKey: string): string[] {
  return axisKey.split(',').map((k) => k.trim());
}

/** Checks an axis's keys, and that each value of a linked axis is a list of one entry per key. */
function checkAxis(key: string, values: unknown[], whereKey: () => string, whereValue: (i: number) => string): void {
  const keys = axisKeys(key);
  for (const k of keys) checkKeyPath(k, whereKey);
  if (keys.length === 1) return;
  if (new Set(keys).size < keys.length) throw new InputError(whereKey(), `the linked axis "${key}" names a key twice`);
  values.forEach((v, i) => {
    if (!Array.isArray(v) || v.length !== keys.length) {
      throw new InputError(
        whereValue(i),
        `each value of the linked axis "${key}" is a list of ${keys.length} values, one per key (for example [${keys.map(() => '...').join(', ')}]); got ${JSON.stringify(v)}`,
      );
    }
  });
}

function checkKeyPath(key: string, where: () => string): void {
  if (KEY_PATHS.includes(key)) return;
  const near = didYouMean(key, KEY_PATHS);
  const hint = near ? ` (did you mean "${near}"?)` : '';
  throw new InputError(
    where(),
    `unknown key "${key}"${hint}; keys are dotted paths such as train.lr, model.norm, data.dataset`,
  );
}

/** Sets a dotted key path in a nested object, creating mappings on the way. */
export function setPath(obj: Record<string, unknown>, keyPath: string, value: unknown): void {
  const parts = keyPath.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (cur[p] === null || typeof cur[p] !== 'object' || Array.isArray(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

/** Reads a dotted key path from a nested object. */
export function getPath(obj: unknown, keyPath: string): unknown {
  let cur = obj;
  for (const p of keyPath.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** Deep merge of plain mappings; lists and scalars in `over` replace. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (over === undefined) return structuredClone(base);
  if (
    base === null ||
    typeof base !== 'object' ||
    Array.isArray(base) ||
    over === null ||
    typeof over !== 'object' ||
    Array.isArray(over)
  ) {
    return structuredClone(over) as T;
  }
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out as T;
}

/**
 * Validates a resolved configuration. `whereOf` maps a key path to where its value was written,
 * so the error points at the grid entry or `--set` that produced a bad value.
 */
export function checkRunConfig(config: unknown, whereOf: (keyPath: string) => string): RunConfig {
  const validateRunConfig = specValidators().runConfig;
  if (!validateRunConfig(config)) {
    const err = pickError(validateRunConfig.errors ?? []);
    throw new InputError(whereOf(errorKeyPath(err)), describeError(err, config));
  }
  return config as unknown as RunConfig;
}

/** Picks the most telling ajv error: the deepest, skipping the `null` alternative of nullable keys. */
function pickError(errors: ErrorObject[]): ErrorObject {
  const useful = errors.filter((e) => e.keyword !== 'anyOf' && !(e.keyword === 'type' && e.params.type === 'null'));
  const pool = useful.length > 0 ? useful : errors;
  return pool.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a));
}

/** The JSON-pointer segments of an error's location (grid keys contain dots, so not split on them). */
function errorParts(err: ErrorObject): string[] {
  const parts = err.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (err.keyword === 'additionalProperties') parts.push(String(err.params.additionalProperty));
  return parts;
}

function errorKeyPath(err: ErrorObject): string {
  return errorParts(err).join('.');
}

function describeError(err: ErrorObject, root: unknown): string {
  const keyPath = errorKeyPath(err);
  const value = errorParts(err).reduce<unknown>(
    (v, p) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined),
    root,
  );
  const shown = typeof value === 'number' && !Number.isFinite(value) ? String(value) : JSON.stringify(value);
  switch (err.keyword) {
    case 'additionalProperties': {
      const parent = keyPath.split('.').slice(0, -1).join('.');
      const sub = parent ? schemaAt(parent) : SPEC_SCHEMA;
      const allowed = Object.keys((sub?.properties ?? {}) as object);
      const near = didYouMean(String(err.params.additionalProperty), allowed);
      return `unknown key "${keyPath}"${near ? ` (did you mean "${near}"?)` : ''}; allowed here: ${allowed.join(', ')}`;
    }
    case 'enum':
      return `${keyPath} is ${shown}; allowed: ${(err.params.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'type':
      return `${keyPath} is ${shown}, expected ${err.params.type}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const op = { minimum: '>=', maximum: '<=', exclusiveMinimum: '>', exclusiveMaximum: '<' }[err.keyword];
      return `${keyPath} is ${shown}, must be ${op} ${err.params.limit}`;
    }
    case 'required':
      return `missing required key "${[keyPath, err.params.missingProperty].filter(Boolean).join('.')}"`;
    case 'minItems':
      return `${keyPath} is empty; give at least ${err.params.limit} value`;
    case 'pattern': {
      const desc = (schemaAt(keyPath)?.description as string | undefined) ?? `match ${err.params.pattern}`;
      return `${keyPath} is ${shown}; allowed: ${desc}`;
    }
    default:
      return `${keyPath || 'spec'} ${err.message ?? 'is invalid'}`;
  }
}

/** The closest candidate by edit distance, if it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  // A suffix match catches a bare leaf name (`lr` for `train.lr`).
  const bySuffix = candidates.find((c) => c.endsWith(`.${word}`));
  if (bySuffix && bestD > 1) return bySuffix;
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** `file:line:col` of a key path's value (or of its key), when the document has it. */
function locateInDoc(
  doc: Document,
  keyPath: string,
  atKey: boolean,
  pos: (offset: number) => string,
): string | undefined {
  const range = nodeAt(doc, keyPath, atKey)?.range;
  return range ? pos(range[0]) : undefined;
}

/** The document node of a key path's value (or of its key): the deepest the document has. */
function nodeAt(doc: Document, keyPath: string, atKey = false): { range?: [number, number, number] } | undefined {
  // Grid keys contain dots themselves (`grid.train.lr.0`): walk the document, matching the
  // longest key that fits at each level.
  let node: unknown = doc.contents;
  let rest = keyPath;
  let last: { key: unknown; value: unknown } | undefined;
  while (rest !== '' && node) {
    let next: { key: unknown; value: unknown } | undefined;
    let consumed = '';
    if (isMap(node)) {
      for (const pair of node.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : undefined;
        if (k !== undefined && (rest === k || rest.startsWith(`${k}.`)) && k.length > consumed.length) {
          next = pair;
          consumed = k;
        }
      }
    } else if (node && typeof node === 'object' && 'items' in node) {
      const idx = rest.split('.')[0];
      const item = (node as { items: unknown[] }).items[Number(idx)];
      if (item !== undefined) {
        next = { key: undefined, value: isPair(item) ? item.value : item };
        consumed = idx;
      }
    }
    if (!next) break;
    last = next;
    node = next.value;
    rest = rest.slice(consumed.length + 1);
  }
  const target = rest === '' && !atKey ? last?.value : (last?.key ?? last?.value);
  return target as { range?: [number, number, number] } | undefined;
}
