import { MlflowError } from './errors.ts';
import {
  describeType,
  type ColSpec,
  type ColType,
  type DataType,
  type ObjectType,
  type ParamSpec,
  type Signature,
  type TensorSpec,
} from './signature.ts';

/**
 * Checks a prediction request against a model signature before the model sees it, the way
 * MLflow's pyfunc `_enforce_schema` and `_enforce_params_schema` do: missing required inputs,
 * values of the wrong type, params the signature does not define. Failures throw MlflowError
 * with INVALID_PARAMETER_VALUE and a message in MLflow's wording.
 */

export interface ValidatedRequest {
  /** One record per input row (column name -> value); tensor inputs keep their given form. */
  rows: Record<string, unknown>[];
  /** The params, with the signature's defaults filled in. */
  params: Record<string, unknown>;
}

export interface ValidateOptions {
  /**
   * MLflow logs unknown params and ignores them; a playground that silently drops a setting is
   * confusing, so the default here is to refuse them.
   */
  unknownParams?: 'error' | 'ignore';
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  !(v instanceof Uint8Array) &&
  !(v instanceof Date);

const pyList = (xs: string[]) => `[${xs.map((x) => `'${x}'`).join(', ')}]`;

function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'object') return 'dict';
  return typeof v;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? `'${v}'` : (JSON.stringify(v) ?? String(v));
  return s.length > 60 ? s.slice(0, 59) + '…' : s;
}

class TypeMismatch extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

function checkScalar(t: DataType, v: unknown, path: string): unknown {
  const bad = () =>
    new TypeMismatch(path, `Can not safely convert ${typeName(v)} ${show(v)} to ${t}.`);
  switch (t) {
    case 'string':
      if (typeof v !== 'string') throw bad();
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') throw bad();
      return v;
    case 'double':
    case 'float':
      if (typeof v !== 'number') throw bad();
      return v;
    case 'long':
    case 'integer': {
      if (typeof v === 'bigint') return v;
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad();
      if (t === 'integer' && (v < -(2 ** 31) || v >= 2 ** 31)) throw bad();
      return v;
    }
    case 'binary':
      if (v instanceof Uint8Array) return v;
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(v)) throw bad();
      return v;
    case 'datetime':
      if (v instanceof Date) return v;
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw bad();
      return v;
  }
}

function checkType(t: ColType, v: unknown, path: string): unknown {
  switch (t.type) {
    case 'any':
      return v;
    case 'sparkml_vector':
      return v;
    case 'array': {
      if (!Array.isArray(v)) {
        throw new TypeMismatch(
          path,
          `Expected a list for ${describeType(t)}, got ${typeName(v)} ${show(v)}.`,
        );
      }
      return v.map((x, i) => checkType(t.items, x, `${path}[${i}]`));
    }
    case 'map': {
      if (!isObj(v)) {
        throw new TypeMismatch(
          path,
          `Expected a dict for ${describeType(t)}, got ${typeName(v)} ${show(v)}.`,
        );
      }
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [k, checkType(t.values, x, `${path}.${k}`)]),
      );
    }
    case 'object':
      return checkObject(t, v, path);
    default:
      return checkScalar(t.type, v, path);
  }
}

function checkObject(t: ObjectType, v: unknown, path: string): Record<string, unknown> {
  if (!isObj(v)) {
    throw new TypeMismatch(
      path,
      `Expected a dict with properties ${pyList(Object.keys(t.properties))}, got ${typeName(v)} ${show(v)}.`,
    );
  }
  const extra = Object.keys(v).filter((k) => !(k in t.properties));
  if (extra.length > 0) {
    throw new TypeMismatch(
      path,
      `Invalid properties not defined in the schema found: ${pyList(extra)}.`,
    );
  }
  const missing = Object.entries(t.properties)
    .filter(([k, p]) => p.required && (v[k] === undefined || v[k] === null))
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new TypeMismatch(path, `Missing required properties: ${pyList(missing)}.`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || x === undefined) out[k] = x;
    else out[k] = checkType(t.properties[k]!.type, x, `${path}.${k}`);
  }
  return out;
}

/** Turns the accepted input shapes into rows: a dict, a list of dicts, dataframe_split, a bare value. */
function toRows(specs: ColSpec[], input: unknown): Record<string, unknown>[] {
  if (Array.isArray(input)) {
    if (input.every(isObj)) return input;
    // A list of values for a single-column schema.
    const [only] = specs;
    if (specs.length === 1 && only && only.type.type !== 'array') {
      return input.map((x) => ({ [only.name ?? '0']: x }));
    }
  }
  if (isObj(input)) {
    if (Array.isArray(input.columns) && Array.isArray(input.data)) {
      const columns = input.columns.map(String);
      return (input.data as unknown[]).map((row) =>
        Array.isArray(row) ? Object.fromEntries(columns.map((c, i) => [c, row[i]])) : {},
      );
    }
    // {"prompt": ["a", "b"]} is two rows; {"stop": ["x"]} is one row with a list value.
    const byName = new Map(specs.map((s) => [s.name, s]));
    const listed = Object.entries(input).filter(
      ([k, v]) =>
        Array.isArray(v) &&
        byName.has(k) &&
        byName.get(k)!.type.type !== 'array' &&
        byName.get(k)!.type.type !== 'any',
    );
    if (listed.length === 0) return [input];
    const n = (listed[0]![1] as unknown[]).length;
    if (listed.some(([, v]) => (v as unknown[]).length !== n)) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        'All input columns must have the same number of values.',
      );
    }
    return Array.from({ length: n }, (_, i) =>
      Object.fromEntries(
        Object.entries(input).map(([k, v]) => [
          k,
          listed.some(([lk]) => lk === k) ? (v as unknown[])[i] : v,
        ]),
      ),
    );
  }
  const [only] = specs;
  if (specs.length === 1 && only && input !== undefined) return [{ [only.name ?? '0']: input }];
  throw new MlflowError(
    'INVALID_PARAMETER_VALUE',
    `Failed to enforce schema: expected a dict, a list of dicts or a dataframe_split object, got ${typeName(input)}.`,
  );
}

function validateColumns(specs: ColSpec[], input: unknown): Record<string, unknown>[] {
  const rows = toRows(specs, input);
  const named = specs.every((s) => s.name !== undefined);
  if (!named) {
    // Unnamed column specs bind by position.
    return rows.map((row) => {
      const values = Object.values(row);
      return Object.fromEntries(
        specs.map((s, i) => [String(i), enforceColumn(s, String(i), values[i])]),
      );
    });
  }
  const present = new Set(rows.flatMap((r) => Object.keys(r).filter((k) => r[k] !== undefined)));
  const missing = specs.filter((s) => s.required && !present.has(s.name!)).map((s) => s.name!);
  if (missing.length > 0) {
    const known = new Set(specs.map((s) => s.name!));
    const extra = [...present].filter((k) => !known.has(k));
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Model is missing inputs ${pyList(missing)}.` +
        (extra.length > 0 ? ` Note that there were extra inputs: ${pyList(extra)}.` : ''),
    );
  }
  return rows.map((row) => {
    const out: Record<string, unknown> = {};
    for (const s of specs) {
      const v = row[s.name!];
      if (v === undefined) continue;
      out[s.name!] = enforceColumn(s, s.name!, v);
    }
    return out;
  });
}

function enforceColumn(s: ColSpec, name: string, v: unknown): unknown {
  if (v === null || v === undefined) {
    if (s.required) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Failed to enforce schema of data: column '${name}' is required but got None.`,
      );
    }
    return v;
  }
  try {
    return checkType(s.type, v, name);
  } catch (e) {
    if (e instanceof TypeMismatch) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Failed to enforce schema of data with schema '${name}: ${describeType(s.type)}'. ` +
          `Error: Incompatible input types for column ${name}` +
          (e.path === name ? '' : ` at ${e.path}`) +
          `. ${e.message}`,
      );
    }
    throw e;
  }
}

function validateTensors(specs: TensorSpec[], input: unknown): Record<string, unknown>[] {
  const named = specs.every((s) => s.name !== undefined);
  if (!named || specs.length === 1) {
    const [only] = specs;
    if (isObj(input) && only?.name !== undefined && only.name in input) return [input];
    return [{ [only?.name ?? '0']: input }];
  }
  if (!isObj(input)) {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Expected a dict of named tensors ${pyList(specs.map((s) => s.name!))}, got ${typeName(input)}.`,
    );
  }
  const missing = specs.map((s) => s.name!).filter((n) => !(n in input));
  if (missing.length > 0) {
    throw new MlflowError('INVALID_PARAMETER_VALUE', `Model is missing inputs ${pyList(missing)}.`);
  }
  return [input];
}

function paramTypeLabel(p: ParamSpec): string {
  return typeof p.type === 'string' ? p.type : describeType(p.type);
}

function enforceParam(p: ParamSpec, v: unknown): unknown {
  try {
    if (p.shape !== null) {
      if (!Array.isArray(v))
        throw new TypeMismatch(
          p.name,
          `Value must be a 1D array with shape (-1,), got ${typeName(v)} ${show(v)}.`,
        );
      return v.map((x, i) =>
        typeof p.type === 'string'
          ? checkScalar(p.type, x, `${p.name}[${i}]`)
          : checkObject(p.type, x, `${p.name}[${i}]`),
      );
    }
    return typeof p.type === 'string'
      ? checkScalar(p.type, v, p.name)
      : checkObject(p.type, v, p.name);
  } catch (e) {
    if (e instanceof TypeMismatch) {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `Failed to validate type and shape for '${p.name}' (${paramTypeLabel(p)}), error: ${e.message}`,
      );
    }
    throw e;
  }
}

function validateParams(
  schema: ParamSpec[] | null,
  params: Record<string, unknown> | undefined,
  opts: ValidateOptions,
): Record<string, unknown> {
  const given = params ?? {};
  const names = Object.keys(given).filter((k) => given[k] !== undefined);
  if (!schema) {
    if (names.length > 0 && opts.unknownParams !== 'ignore') {
      throw new MlflowError(
        'INVALID_PARAMETER_VALUE',
        `\`params\` can only be specified at inference time if the model signature defines a params schema. This model does not define a params schema. Params given: ${pyList(names)}.`,
      );
    }
    return {};
  }
  const known = new Map(schema.map((p) => [p.name, p]));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0 && opts.unknownParams !== 'ignore') {
    throw new MlflowError(
      'INVALID_PARAMETER_VALUE',
      `Unrecognized params ${pyList(unknown)}: the model signature defines params ${pyList([...known.keys()])}.`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const p of schema) {
    const v = given[p.name];
    out[p.name] = v === undefined || v === null ? p.default : enforceParam(p, v);
  }
  return out;
}

/**
 * Validates `input` (and `params`) against `signature`. Called by the serving layer before every
 * prediction. A model without a signature accepts any input (as in MLflow).
 */
export function validateRequest(
  signature: Signature | null | undefined,
  input: unknown,
  params?: Record<string, unknown>,
  opts: ValidateOptions = {},
): { ok: true; value: ValidatedRequest } {
  const outParams = validateParams(signature?.params ?? null, params, opts);
  const inputs = signature?.inputs;
  let rows: Record<string, unknown>[];
  if (!inputs)
    rows = isObj(input)
      ? [input]
      : Array.isArray(input) && input.every(isObj)
        ? input
        : [{ '0': input }];
  else if (inputs[0]?.kind === 'tensor') rows = validateTensors(inputs as TensorSpec[], input);
  else rows = validateColumns(inputs as ColSpec[], input);
  return { ok: true, value: { rows, params: outParams } };
}

/**
 * Splits a scoring-server request body into input and params: exactly one of dataframe_split,
 * dataframe_records, instances, inputs; or an LLM-shaped dict (messages / prompt / input).
 */
export function parseServingRequest(body: unknown): {
  input: unknown;
  params?: Record<string, unknown>;
} {
  if (!isObj(body)) {
    throw new MlflowError('BAD_REQUEST', 'The request body must be a JSON object.');
  }
  const formats = ['dataframe_split', 'dataframe_records', 'instances', 'inputs'].filter(
    (k) => k in body,
  );
  const params = isObj(body.params) ? body.params : undefined;
  if (formats.length > 1) {
    throw new MlflowError(
      'BAD_REQUEST',
      `Invalid input. The input must contain exactly one of ${pyList(formats)}.`,
    );
  }
  if (formats.length === 1) {
    const input = body[formats[0]!];
    return params ? { input, params } : { input };
  }
  if (['messages', 'prompt', 'input'].some((k) => k in body)) return { input: body };
  throw new MlflowError(
    'BAD_REQUEST',
    "Invalid input. The input must be a JSON dictionary with exactly one of the input fields {'dataframe_split', 'dataframe_records', 'instances', 'inputs'}.",
  );
}
