/**
 * MLflow's validation rules for tracking entities (mlflow/utils/validation.py, 3.x limits).
 * Every check throws MlflowError(INVALID_PARAMETER_VALUE) with a message in MLflow's words.
 */
import { MlflowError } from './errors.ts';
import type { Metric, Param, RunTag } from './entities.ts';

export const LIMITS = {
  keyLength: 250,
  paramValueLength: 6000,
  runTagValueLength: 8000,
  experimentTagKeyLength: 250,
  experimentTagValueLength: 5000,
  experimentNameLength: 500,
  batchMetrics: 1000,
  batchParams: 100,
  batchTags: 100,
  batchTotal: 1000,
  datasetName: 500,
  datasetDigest: 36,
  datasetSchema: 1_048_575,
  datasetSource: 65_535,
  datasetProfile: 16_777_215,
  inputTagKey: 255,
  inputTagValue: 500,
  searchMaxResults: 50_000,
} as const;

const VALID_KEY = /^[/\w.\- :]*$/;
const RUN_ID = /^[a-zA-Z0-9][\w-]{0,255}$/;
const EXPERIMENT_ID = /^[a-zA-Z0-9][\w-]{0,63}$/;

function bad(message: string): MlflowError {
  return new MlflowError('INVALID_PARAMETER_VALUE', message);
}

/** Python's posixpath.normpath, enough to tell whether a key is already a normalized path. */
function normpath(p: string): string {
  if (p === '') return '.';
  const absolute = p.startsWith('/');
  // POSIX keeps exactly two leading slashes; anything else collapses to one.
  const lead = absolute ? (p.startsWith('//') && !p.startsWith('///') ? '//' : '/') : '';
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && (out.length === 0 ? absolute : out[out.length - 1] !== '..')) {
      if (out.length > 0) out.pop();
      continue;
    }
    out.push(part);
  }
  const joined = lead + out.join('/');
  return joined === '' ? '.' : joined;
}

/** MLflow rejects keys that would not map to exactly one file path in its file store. */
export function pathNotUnique(name: string): boolean {
  const norm = normpath(name);
  return norm !== name || norm === '.' || norm.startsWith('..') || norm.startsWith('/');
}

type KeyKind = 'metric' | 'param' | 'tag';

export function validateKey(kind: KeyKind, key: unknown): asserts key is string {
  const label = kind === 'param' ? 'parameter' : kind;
  if (key === null || key === undefined) {
    throw bad(`${capitalize(label)} name cannot be None. A key name must be provided.`);
  }
  if (typeof key !== 'string')
    throw bad(`${capitalize(label)} name must be a string, got ${typeof key}.`);
  if (!VALID_KEY.test(key)) {
    throw bad(
      `Invalid ${label} name: '${key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).`,
    );
  }
  if (pathNotUnique(key)) {
    throw bad(
      `Invalid ${label} name: '${key}'. Names cannot resolve to the current directory ('.') or a parent directory ('..'), start with '/', or contain '//' or trailing slashes.`,
    );
  }
  if (key.length > LIMITS.keyLength) {
    throw bad(
      `${capitalize(label)} name '${key.slice(0, 32)}…' had length ${key.length}, which exceeded length limit of ${LIMITS.keyLength}.`,
    );
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function validateLength(what: string, key: string, value: string, limit: number): void {
  if (value.length > limit) {
    throw bad(
      `${what} '${key}' had length ${value.length}, which exceeded length limit of ${limit}.`,
    );
  }
}

export function validateParam(key: unknown, value: unknown): asserts key is string {
  validateKey('param', key);
  if (typeof value !== 'string') throw bad(`Value of parameter '${key}' must be a string.`);
  validateLength('Param value', key, value, LIMITS.paramValueLength);
}

export function validateRunTag(key: unknown, value: unknown): asserts key is string {
  validateKey('tag', key);
  if (typeof value !== 'string') throw bad(`Value of tag '${key}' must be a string.`);
  validateLength('Tag value', key, value, LIMITS.runTagValueLength);
}

export function validateExperimentTag(key: unknown, value: unknown): asserts key is string {
  validateKey('tag', key);
  if (key.length > LIMITS.experimentTagKeyLength) {
    throw bad(`Tag key '${key}' exceeded length limit of ${LIMITS.experimentTagKeyLength}.`);
  }
  if (typeof value !== 'string') throw bad(`Value of tag '${key}' must be a string.`);
  validateLength('Experiment tag value', key, value, LIMITS.experimentTagValueLength);
}

export function validateMetric(
  key: unknown,
  value: unknown,
  timestamp: unknown,
  step: unknown,
): void {
  validateKey('metric', key);
  if (typeof value !== 'number') {
    throw bad(
      `Got invalid value ${String(value)} for metric '${key}' (timestamp=${String(timestamp)}). Please specify value as a valid double (64-bit floating point)`,
    );
  }
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) {
    throw bad(
      `Got invalid timestamp ${String(timestamp)} for metric '${key}' (value=${value}). Timestamp must be a nonnegative long (64-bit integer)`,
    );
  }
  if (typeof step !== 'number' || !Number.isSafeInteger(step)) {
    throw bad(
      `Got invalid step ${String(step)} for metric '${key}' (value=${value}). Step must be a valid long (64-bit integer).`,
    );
  }
}

export function validateExperimentName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') {
    throw bad(
      `Invalid experiment name: '${String(name ?? '')}'. Experiment name must be a non-empty string.`,
    );
  }
  if (name.length > LIMITS.experimentNameLength) {
    throw bad(
      `Experiment name had length ${name.length}, which exceeded length limit of ${LIMITS.experimentNameLength}.`,
    );
  }
}

export function validateRunId(runId: unknown): asserts runId is string {
  if (typeof runId !== 'string' || !RUN_ID.test(runId)) {
    throw bad(`Invalid run ID: '${String(runId)}'`);
  }
}

export function validateExperimentId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !EXPERIMENT_ID.test(id)) {
    throw bad(`Invalid experiment ID: '${String(id)}'`);
  }
}

export function validateBatchLimits(metrics: number, params: number, tags: number): void {
  const check = (n: number, limit: number, what: string) => {
    if (n > limit) {
      throw bad(
        `A batch logging request can contain at most ${limit} ${what}. Got ${n} ${what}. Please split up ${what} across multiple requests and try again.`,
      );
    }
  };
  check(metrics, LIMITS.batchMetrics, 'metrics');
  check(params, LIMITS.batchParams, 'params');
  check(tags, LIMITS.batchTags, 'tags');
  const total = metrics + params + tags;
  if (total > LIMITS.batchTotal) {
    throw bad(
      `A batch logging request can contain at most ${LIMITS.batchTotal} total metrics, params, and tags. Got ${total} total. Please split up the request across multiple requests and try again.`,
    );
  }
}

/** Full log-batch validation, as MLflow does it before touching the store. */
export function validateBatch(metrics: Metric[], params: Param[], tags: RunTag[]): void {
  validateBatchLimits(metrics.length, params.length, tags.length);
  for (const m of metrics) validateMetric(m.key, m.value, m.timestamp, m.step);
  const seen = new Map<string, string>();
  for (const p of params) {
    validateParam(p.key, p.value);
    const prev = seen.get(p.key);
    if (prev !== undefined && prev !== p.value) {
      throw bad(
        `Duplicate parameter keys have been submitted: ['${p.key}']. Please ensure the request contains only one param value per param key.`,
      );
    }
    seen.set(p.key, p.value);
  }
  for (const t of tags) validateRunTag(t.key, t.value);
}

export function validateMaxResults(n: unknown): number {
  if (n === undefined || n === null) return 1000;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw bad(
      `Invalid value ${String(n)} for parameter 'max_results' supplied. It must be a positive integer`,
    );
  }
  if (n > LIMITS.searchMaxResults) {
    throw bad(
      `Invalid value ${n} for parameter 'max_results' supplied. It must be at most ${LIMITS.searchMaxResults}, but got value ${n}`,
    );
  }
  return n;
}
