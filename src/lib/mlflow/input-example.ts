import { pyJsonDumps } from './pyjson.ts';
import type { SavedInputExampleInfo } from './mlmodel.ts';

/**
 * Input examples (mlflow/models/utils.py): `input_example.json` in the forms MLflow writes, and
 * `serving_input_example.json`, the request body that the scoring server accepts.
 */

export type InputExample =
  /** A DataFrame: column names and rows. */
  | { type: 'dataframe'; columns: string[]; data: unknown[][]; params?: Record<string, unknown> }
  /** An ndarray, or a dict of named ndarrays (nested lists). */
  | { type: 'ndarray'; value: unknown; params?: Record<string, unknown> }
  /** Any JSON value kept as is (MLflow >= 2.16 for dicts, lists and scalars). */
  | { type: 'json_object'; value: unknown; params?: Record<string, unknown> }
  | {
      type: 'sparse_matrix_csr' | 'sparse_matrix_csc';
      value: { data: number[]; indices: number[]; indptr: number[]; shape: number[] };
      params?: Record<string, unknown>;
    };

export class InputExampleError extends Error {
  override name = 'InputExampleError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads `input_example.json` using the `saved_input_example_info` block of MLmodel. */
export function parseInputExample(text: string, info: SavedInputExampleInfo): InputExample {
  const file = info.artifact_path;
  let raw: unknown;
  try {
    // Python's json writes NaN for missing numbers in older files.
    raw = JSON.parse(text.replace(/\bNaN\b/g, 'null'));
  } catch (e) {
    throw new InputExampleError(file, `not valid JSON (${(e as Error).message})`);
  }
  let params: Record<string, unknown> | undefined;
  let data = raw;
  if (info.params === 'true' || (info.params as unknown) === true) {
    if (!isObj(raw) || !('inputs' in raw)) {
      throw new InputExampleError(
        file,
        'expected {"inputs": ..., "params": {...}} because params were saved',
      );
    }
    data = raw.inputs;
    if (raw.params !== undefined && !isObj(raw.params)) {
      throw new InputExampleError(file, 'expected "params" to be an object');
    }
    params = raw.params as Record<string, unknown> | undefined;
  }
  const withParams = <T extends object>(x: T): T => (params ? { ...x, params } : x);
  switch (info.type) {
    case 'dataframe': {
      if (info.pandas_orient === 'values' || Array.isArray(data)) {
        if (!Array.isArray(data) || !data.every(Array.isArray)) {
          throw new InputExampleError(file, 'expected a list of rows (pandas_orient: values)');
        }
        const width = (data[0] as unknown[] | undefined)?.length ?? 0;
        return withParams({
          type: 'dataframe',
          columns: Array.from({ length: width }, (_, i) => String(i)),
          data: data as unknown[][],
        });
      }
      if (!isObj(data) || !Array.isArray(data.data)) {
        throw new InputExampleError(
          file,
          'expected {"columns": [...], "data": [[...]]} (pandas_orient: split)',
        );
      }
      const rows = data.data as unknown[];
      if (!rows.every(Array.isArray))
        throw new InputExampleError(file, 'expected "data" to be a list of rows');
      const columns = Array.isArray(data.columns)
        ? data.columns.map(String)
        : Array.from({ length: (rows[0] as unknown[] | undefined)?.length ?? 0 }, (_, i) =>
            String(i),
          );
      return withParams({ type: 'dataframe', columns, data: rows as unknown[][] });
    }
    case 'ndarray':
      // Old examples were wrapped as {"inputs": ...} with format: tf-serving.
      if (info.format === 'tf-serving' && isObj(data) && 'inputs' in data) data = data.inputs;
      return withParams({ type: 'ndarray', value: data });
    case 'sparse_matrix_csr':
    case 'sparse_matrix_csc': {
      const m = data;
      if (!isObj(m) || !['data', 'indices', 'indptr', 'shape'].every((k) => Array.isArray(m[k]))) {
        throw new InputExampleError(file, 'expected {"data", "indices", "indptr", "shape"}');
      }
      return withParams({
        type: info.type,
        value: m as { data: number[]; indices: number[]; indptr: number[]; shape: number[] },
      });
    }
    case 'json_object':
      return withParams({ type: 'json_object', value: data });
    default:
      throw new InputExampleError(
        file,
        `unknown example type '${info.type}' in MLmodel saved_input_example_info`,
      );
  }
}

/** Rows (column name -> value) of a DataFrame-shaped or dict-shaped example, for display. */
export function exampleRecords(ex: InputExample): Record<string, unknown>[] | undefined {
  if (ex.type === 'dataframe') {
    return ex.data.map((row) => Object.fromEntries(ex.columns.map((c, i) => [c, row[i]])));
  }
  if (ex.type === 'json_object' && isObj(ex.value)) return [ex.value];
  return undefined;
}

const LLM_KEYS = ['messages', 'prompt', 'input'];

/** The body MLflow's scoring server accepts for this example (serving_input_example.json's value). */
export function servingInput(ex: InputExample): Record<string, unknown> {
  let body: Record<string, unknown>;
  switch (ex.type) {
    case 'dataframe':
      body = { dataframe_split: { columns: ex.columns, data: ex.data } };
      break;
    case 'json_object':
      // LLM-shaped dicts are sent as they are, with params merged in.
      if (isObj(ex.value) && LLM_KEYS.some((k) => k in (ex.value as object))) {
        return { ...ex.value, ...(ex.params ?? {}) };
      }
      body = { inputs: ex.value };
      break;
    case 'ndarray':
      body = { inputs: ex.value };
      break;
    default:
      body = { inputs: ex.value };
  }
  if (ex.params) body.params = ex.params;
  return body;
}

export interface WrittenInputExample {
  /** Content of input_example.json. */
  inputExampleJson: string;
  /** Content of serving_input_example.json (2-space indent, as MLflow writes it). */
  servingInputExampleJson: string;
  /** The MLmodel `saved_input_example_info` block. */
  info: SavedInputExampleInfo;
}

/** Writes an example the way MLflow saves one. */
export function writeInputExample(ex: InputExample): WrittenInputExample {
  let data: unknown;
  const info: SavedInputExampleInfo = { artifact_path: 'input_example.json', type: ex.type };
  switch (ex.type) {
    case 'dataframe': {
      const defaultColumns = ex.columns.every((c, i) => c === String(i));
      data = defaultColumns ? ex.data : { columns: ex.columns, data: ex.data };
      info.pandas_orient = defaultColumns ? 'values' : 'split';
      break;
    }
    default:
      data = ex.value;
  }
  info.serving_input_path = 'serving_input_example.json';
  if (ex.params) {
    data = { inputs: data, params: ex.params };
    info.params = 'true';
  }
  return {
    inputExampleJson: pyJsonDumps(data),
    servingInputExampleJson: pyJsonDumps(servingInput(ex), { indent: 2 }),
    info,
  };
}

/** Reads serving_input_example.json (any JSON object). */
export function parseServingInputExample(
  text: string,
  file = 'serving_input_example.json',
): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputExampleError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(raw)) throw new InputExampleError(file, 'expected a JSON object');
  return raw;
}
