import { PyFloat, pyJsonDumps } from './pyjson.ts';

/**
 * MLflow model signatures (mlflow/types/schema.py): column-based and tensor-based schemas and
 * the params schema, read from and written to the JSON strings MLflow keeps inside MLmodel.
 */

export const DATA_TYPES = [
  'boolean',
  'integer',
  'long',
  'float',
  'double',
  'string',
  'binary',
  'datetime',
] as const;
export type DataType = (typeof DATA_TYPES)[number];

export interface ArrayType {
  type: 'array';
  items: ColType;
}
export interface ObjectProperty {
  type: ColType;
  required: boolean;
}
export interface ObjectType {
  type: 'object';
  /** Property name -> type; MLflow writes them sorted by name. */
  properties: Record<string, ObjectProperty>;
}
export interface MapType {
  type: 'map';
  values: ColType;
}
export interface AnyType {
  type: 'any';
}
export interface SparkMlVectorType {
  type: 'sparkml_vector';
}
export interface ScalarType {
  type: DataType;
}
export type ColType = ScalarType | ArrayType | ObjectType | MapType | AnyType | SparkMlVectorType;

export interface ColSpec {
  kind: 'column';
  type: ColType;
  name?: string;
  required: boolean;
}

export interface TensorSpec {
  kind: 'tensor';
  name?: string;
  /** NumPy dtype name: float32, int64, bool, str, object, ... */
  dtype: string;
  /** -1 marks a variable dimension. */
  shape: number[];
}

export type Schema = ColSpec[] | TensorSpec[];

export interface ParamSpec {
  name: string;
  type: DataType | ObjectType;
  default: unknown;
  /** null for a scalar, [-1] for a 1-D list. */
  shape: number[] | null;
}

export interface Signature {
  inputs: Schema | null;
  outputs: Schema | null;
  params: ParamSpec[] | null;
}

/** The signature strings as they sit in MLmodel. */
export interface SignatureStrings {
  inputs: string | null;
  outputs: string | null;
  params: string | null;
}

export class SignatureParseError extends Error {
  override name = 'SignatureParseError';
  constructor(
    /** Where: e.g. `signature.inputs[0].items.properties.role`. */
    readonly where: string,
    readonly expected: string,
    readonly got?: unknown,
  ) {
    super(
      `${where}: expected ${expected}` +
        (got === undefined ? '' : `, got ${truncate(JSON.stringify(got) ?? String(got))}`),
    );
  }
}

function truncate(s: string, n = 80): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------- reading

function parseColType(v: unknown, where: string): ColType {
  if (typeof v === 'string') {
    // Very old files name the type as a bare string.
    if ((DATA_TYPES as readonly string[]).includes(v)) return { type: v as DataType };
    throw new SignatureParseError(where, `one of ${DATA_TYPES.join(', ')}`, v);
  }
  if (!isObj(v)) throw new SignatureParseError(where, 'a type object', v);
  const t = v.type;
  switch (t) {
    case 'array':
      return { type: 'array', items: parseColType(v.items, `${where}.items`) };
    case 'map':
      return { type: 'map', values: parseColType(v.values, `${where}.values`) };
    case 'any':
      return { type: 'any' };
    case 'sparkml_vector':
      return { type: 'sparkml_vector' };
    case 'object':
      return parseObjectType(v, where);
    default:
      if (typeof t === 'string' && (DATA_TYPES as readonly string[]).includes(t)) {
        return { type: t as DataType };
      }
      throw new SignatureParseError(
        `${where}.type`,
        `a data type (${DATA_TYPES.join(', ')}, array, object, map, any)`,
        t,
      );
  }
}

function parseObjectType(v: Record<string, unknown>, where: string): ObjectType {
  if (!isObj(v.properties)) {
    throw new SignatureParseError(`${where}.properties`, 'an object of properties', v.properties);
  }
  const properties: Record<string, ObjectProperty> = {};
  for (const name of Object.keys(v.properties).sort()) {
    const p = v.properties[name];
    const pw = `${where}.properties.${name}`;
    if (!isObj(p)) throw new SignatureParseError(pw, 'a property type object', p);
    properties[name] = { type: parseColType(p, pw), required: readRequired(p, pw) };
  }
  return { type: 'object', properties };
}

function readRequired(v: Record<string, unknown>, where: string): boolean {
  if ('required' in v) {
    if (typeof v.required !== 'boolean') {
      throw new SignatureParseError(`${where}.required`, 'true or false', v.required);
    }
    return v.required;
  }
  // MLflow ~2.4-2.8 wrote `optional: true`; older files have neither (required).
  if ('optional' in v) return v.optional !== true;
  return true;
}

function parseSpec(v: unknown, where: string): ColSpec | TensorSpec {
  if (!isObj(v)) throw new SignatureParseError(where, 'a column or tensor spec object', v);
  if (v.name !== undefined && v.name !== null && typeof v.name !== 'string') {
    throw new SignatureParseError(`${where}.name`, 'a string', v.name);
  }
  const name = typeof v.name === 'string' ? v.name : undefined;
  if (v.type === 'tensor') {
    const ts = v['tensor-spec'];
    if (!isObj(ts)) throw new SignatureParseError(`${where}.tensor-spec`, 'an object', ts);
    if (typeof ts.dtype !== 'string') {
      throw new SignatureParseError(`${where}.tensor-spec.dtype`, 'a NumPy dtype name', ts.dtype);
    }
    if (!Array.isArray(ts.shape) || !ts.shape.every((d) => Number.isInteger(d))) {
      throw new SignatureParseError(`${where}.tensor-spec.shape`, 'a list of integers', ts.shape);
    }
    const spec: TensorSpec = { kind: 'tensor', dtype: ts.dtype, shape: ts.shape as number[] };
    if (name !== undefined) spec.name = name;
    return spec;
  }
  const spec: ColSpec = {
    kind: 'column',
    type: parseColType(v, where),
    required: readRequired(v, where),
  };
  if (name !== undefined) spec.name = name;
  return spec;
}

/** Parses a schema JSON string (signature inputs or outputs). */
export function parseSchema(json: string, where = 'schema'): Schema {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new SignatureParseError(where, `valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(raw)) throw new SignatureParseError(where, 'a JSON array of specs', raw);
  if (raw.length === 0) throw new SignatureParseError(where, 'at least one spec (empty schema)');
  const specs = raw.map((s, i) => parseSpec(s, `${where}[${i}]`));
  const kinds = new Set(specs.map((s) => s.kind));
  if (kinds.size > 1) {
    throw new SignatureParseError(where, 'only column specs or only tensor specs, not both');
  }
  const named = specs.filter((s) => s.name !== undefined).length;
  if (named !== 0 && named !== specs.length) {
    throw new SignatureParseError(where, 'all specs named or all unnamed');
  }
  return specs as Schema;
}

function parseParamType(v: Record<string, unknown>, where: string): DataType | ObjectType {
  // Readers also accept `dtype` instead of `type`.
  const t = v.type ?? v.dtype;
  if (t === 'object') return parseObjectType(v, where);
  if (typeof t === 'string' && (DATA_TYPES as readonly string[]).includes(t) && t !== 'binary') {
    return t as DataType;
  }
  throw new SignatureParseError(
    `${where}.type`,
    'a param type (boolean, integer, long, float, double, string, datetime, object)',
    t,
  );
}

/** Parses a params schema JSON string. */
export function parseParamsSchema(json: string, where = 'params'): ParamSpec[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new SignatureParseError(where, `valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(raw)) throw new SignatureParseError(where, 'a JSON array of param specs', raw);
  const seen = new Set<string>();
  return raw.map((p, i): ParamSpec => {
    const w = `${where}[${i}]`;
    if (!isObj(p)) throw new SignatureParseError(w, 'a param spec object', p);
    if (typeof p.name !== 'string') throw new SignatureParseError(`${w}.name`, 'a string', p.name);
    if (seen.has(p.name)) throw new SignatureParseError(`${w}.name`, 'a unique param name', p.name);
    seen.add(p.name);
    const shape = p.shape ?? null;
    if (shape !== null && !(Array.isArray(shape) && shape.every((d) => Number.isInteger(d)))) {
      throw new SignatureParseError(`${w}.shape`, 'null or a list of integers', shape);
    }
    return { name: p.name, type: parseParamType(p, w), default: p.default ?? null, shape };
  });
}

/** Reads the `signature` block of MLmodel (missing keys count as null). */
export function parseSignature(strings: Partial<SignatureStrings>, where = 'signature'): Signature {
  const str = (k: keyof SignatureStrings): string | null => {
    const v = strings[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw new SignatureParseError(`${where}.${k}`, 'a JSON string', v);
    return v;
  };
  const inputs = str('inputs');
  const outputs = str('outputs');
  const params = str('params');
  return {
    inputs: inputs === null ? null : parseSchema(inputs, `${where}.inputs`),
    outputs: outputs === null ? null : parseSchema(outputs, `${where}.outputs`),
    params: params === null ? null : parseParamsSchema(params, `${where}.params`),
  };
}

// ---------------------------------------------------------------- writing

function colTypeJson(t: ColType): Record<string, unknown> {
  switch (t.type) {
    case 'array':
      return { type: 'array', items: colTypeJson(t.items) };
    case 'map':
      return { type: 'map', values: colTypeJson(t.values) };
    case 'object':
      return objectTypeJson(t);
    default:
      return { type: t.type };
  }
}

function objectTypeJson(t: ObjectType): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const name of Object.keys(t.properties).sort()) {
    const p = t.properties[name]!;
    properties[name] = { ...colTypeJson(p.type), required: p.required };
  }
  return { type: 'object', properties };
}

function specJson(s: ColSpec | TensorSpec): Record<string, unknown> {
  if (s.kind === 'tensor') {
    const out: Record<string, unknown> = {};
    if (s.name !== undefined) out.name = s.name;
    out.type = 'tensor';
    out['tensor-spec'] = { dtype: s.dtype, shape: s.shape };
    return out;
  }
  const out = colTypeJson(s.type);
  if (s.name !== undefined) out.name = s.name;
  out.required = s.required;
  return out;
}

/** The schema as the JSON string MLflow writes (`json.dumps` of its dict form). */
export function schemaToJson(schema: Schema): string {
  return pyJsonDumps((schema as (ColSpec | TensorSpec)[]).map(specJson));
}

function isFloatType(t: DataType | ObjectType): boolean {
  return t === 'double' || t === 'float';
}

function paramDefaultJson(p: ParamSpec): unknown {
  // Python keeps 1.0 a float: write float-typed defaults as floats.
  if (!isFloatType(p.type)) return p.default;
  const f = (x: unknown) => (typeof x === 'number' ? new PyFloat(x) : x);
  return Array.isArray(p.default) ? p.default.map(f) : f(p.default);
}

export function paramsToJson(params: ParamSpec[]): string {
  return pyJsonDumps(
    params.map((p) => {
      const out: Record<string, unknown> = {
        name: p.name,
        default: paramDefaultJson(p),
        shape: p.shape,
      };
      if (typeof p.type === 'string') out.type = p.type;
      else Object.assign(out, objectTypeJson(p.type));
      return out;
    }),
  );
}

export function signatureToStrings(sig: Signature): SignatureStrings {
  return {
    inputs: sig.inputs === null ? null : schemaToJson(sig.inputs),
    outputs: sig.outputs === null ? null : schemaToJson(sig.outputs),
    params: sig.params === null ? null : paramsToJson(sig.params),
  };
}

// ---------------------------------------------------------------- helpers

/** A column spec, for building signatures in code. */
export function col(name: string | undefined, type: ColType | DataType, required = true): ColSpec {
  const spec: ColSpec = {
    kind: 'column',
    type: typeof type === 'string' ? { type } : type,
    required,
  };
  if (name !== undefined) spec.name = name;
  return spec;
}

/** Human-readable type, as MLflow's UI shows it: `Array(string)`, `{role: string (required)}`. */
export function describeType(t: ColType | DataType): string {
  if (typeof t === 'string') return t;
  switch (t.type) {
    case 'array':
      return `Array(${describeType(t.items)})`;
    case 'map':
      return `Map(str -> ${describeType(t.values)})`;
    case 'any':
      return 'Any';
    case 'object':
      return `{${Object.entries(t.properties)
        .map(([k, p]) => `${k}: ${describeType(p.type)}${p.required ? ' (required)' : ''}`)
        .join(', ')}}`;
    default:
      return t.type;
  }
}

/** True when the inputs are `[prompt: string]` and the outputs one string: the custom-wrapper contract. */
export function isPromptToStringSignature(sig: Signature | null | undefined): boolean {
  if (!sig?.inputs || !sig.outputs) return false;
  const [inp] = sig.inputs;
  const [out] = sig.outputs;
  return (
    sig.inputs.length === 1 &&
    sig.outputs.length === 1 &&
    inp?.kind === 'column' &&
    inp.name === 'prompt' &&
    inp.type.type === 'string' &&
    out?.kind === 'column' &&
    out.type.type === 'string'
  );
}

/** True when the inputs carry OpenAI-style `messages` (llm/v1/chat and chat models). */
export function isChatSignature(sig: Signature | null | undefined): boolean {
  if (!sig?.inputs) return false;
  return (sig.inputs as (ColSpec | TensorSpec)[]).some(
    (s) =>
      s.kind === 'column' &&
      s.name === 'messages' &&
      s.type.type === 'array' &&
      s.type.items.type === 'object' &&
      'role' in s.type.items.properties,
  );
}

// ---------------------------------------------------------------- the seed signatures

const s = (type: DataType): ScalarType => ({ type });
const arr = (items: ColType): ArrayType => ({ type: 'array', items });
const obj = (props: Record<string, [ColType, boolean]>): ObjectType => ({
  type: 'object',
  properties: Object.fromEntries(
    Object.keys(props)
      .sort()
      .map((k) => [k, { type: props[k]![0], required: props[k]![1] }]),
  ),
});

function chatMessageType(): ObjectType {
  const toolCall = obj({
    function: [obj({ arguments: [s('string'), true], name: [s('string'), true] }), true],
    id: [s('string'), true],
    type: [s('string'), true],
  });
  return obj({
    content: [s('string'), false],
    name: [s('string'), false],
    refusal: [s('string'), false],
    role: [s('string'), true],
    tool_call_id: [s('string'), false],
    tool_calls: [arr(toolCall), false],
  });
}

function chatToolType(): ObjectType {
  const paramProperty = obj({
    description: [s('string'), false],
    enum: [arr(s('string')), false],
    items: [obj({ type: [s('string'), true] }), false],
    type: [s('string'), true],
  });
  const parameters = obj({
    additionalProperties: [s('boolean'), false],
    properties: [{ type: 'map', values: paramProperty }, true],
    required: [arr(s('string')), false],
    type: [s('string'), false],
  });
  const fn = obj({
    description: [s('string'), false],
    name: [s('string'), true],
    parameters: [parameters, true],
    strict: [s('boolean'), false],
  });
  return obj({ function: [fn, false], type: [s('string'), true] });
}

/**
 * The fixed signature MLflow gives a transformers model saved with `task="llm/v1/chat"`
 * (the current constants of mlflow/types/llm.py; older releases wrote subsets).
 */
export function llmV1ChatSignature(): Signature {
  const usage = obj({
    completion_tokens: [s('long'), true],
    prompt_tokens: [s('long'), true],
    total_tokens: [s('long'), true],
  });
  const choice = obj({
    finish_reason: [s('string'), true],
    index: [s('long'), true],
    message: [chatMessageType(), true],
  });
  const anyMap: MapType = { type: 'map', values: { type: 'any' } };
  return {
    inputs: [
      col('messages', arr(chatMessageType())),
      col('temperature', 'double', false),
      col('max_tokens', 'long', false),
      col('stop', arr(s('string')), false),
      col('n', 'long', false),
      col('stream', 'boolean', false),
      col('top_p', 'double', false),
      col('top_k', 'long', false),
      col('frequency_penalty', 'double', false),
      col('presence_penalty', 'double', false),
      col('tools', arr(chatToolType()), false),
      col('custom_inputs', anyMap, false),
    ],
    outputs: [
      col('id', 'string'),
      col('object', 'string'),
      col('created', 'long'),
      col('model', 'string'),
      col('choices', arr(choice)),
      col('usage', usage, false),
      col('custom_outputs', anyMap, false),
    ],
    params: null,
  };
}

/** `infer_signature({"prompt": [...]}, ["..."])`: the custom Python wrapper's signature. */
export function promptToStringSignature(): Signature {
  return { inputs: [col('prompt', 'string')], outputs: [col(undefined, 'string')], params: null };
}
