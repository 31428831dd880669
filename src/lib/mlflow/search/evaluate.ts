/** Evaluates parsed filters and order_by clauses over runs, with MLflow's semantics. */
import type { Run } from '../entities.ts';
import type { Comparison, Identifier, OrderByClause } from './parser.ts';

/** LIKE pattern to a RegExp: `%` any run of characters, `_` exactly one. */
export function likeToRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  let src = '';
  for (const ch of pattern) {
    if (ch === '%') src += '[\\s\\S]*';
    else if (ch === '_') src += '[\\s\\S]';
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, caseInsensitive ? 'iu' : 'u');
}

function attributeValue(run: Run, key: string): string | number | null {
  const i = run.info;
  switch (key) {
    case 'run_id':
      return i.runId;
    case 'run_name':
      return i.runName;
    case 'status':
      return i.status;
    case 'user_id':
      return i.userId;
    case 'artifact_uri':
      return i.artifactUri;
    case 'start_time':
      return i.startTime;
    case 'end_time':
      return i.endTime;
    default:
      return null;
  }
}

/** The value an identifier names on a run; undefined when the run lacks it. */
export function valueOf(run: Run, id: Identifier): string | number | undefined {
  switch (id.type) {
    case 'metric':
      return run.metrics[id.key]?.value;
    case 'param':
      return run.params[id.key];
    case 'tag':
      return run.tags[id.key];
    case 'attribute':
      return attributeValue(run, id.key) ?? undefined;
    case 'dataset':
      return undefined;
  }
}

const regexCache = new Map<string, RegExp>();
function cachedLike(pattern: string, ci: boolean): RegExp {
  const k = `${ci ? 'i' : 's'}:${pattern}`;
  let re = regexCache.get(k);
  if (!re) {
    if (regexCache.size > 256) regexCache.clear();
    re = likeToRegExp(pattern, ci);
    regexCache.set(k, re);
  }
  return re;
}

function compare(actual: string | number, c: Comparison): boolean {
  const v = c.value;
  switch (c.comparator) {
    case '=':
      return actual === v;
    case '!=':
      return actual !== v;
    case '<':
      return (actual as number) < (v as number);
    case '<=':
      return (actual as number) <= (v as number);
    case '>':
      return (actual as number) > (v as number);
    case '>=':
      return (actual as number) >= (v as number);
    case 'LIKE':
      return cachedLike(v as string, false).test(String(actual));
    case 'ILIKE':
      return cachedLike(v as string, true).test(String(actual));
    case 'IN':
      return (v as string[]).includes(String(actual));
    case 'NOT IN':
      return !(v as string[]).includes(String(actual));
    default:
      return false;
  }
}

function datasetMatches(run: Run, c: Comparison): boolean {
  for (const input of run.inputs ?? []) {
    const actual =
      c.identifier.key === 'name'
        ? input.dataset.name
        : c.identifier.key === 'digest'
          ? input.dataset.digest
          : input.tags['mlflow.data.context'];
    if (actual !== undefined && compare(actual, c)) return true;
  }
  return false;
}

/** One comparison. A run lacking the key never matches (even `!=`), as in MLflow. */
export function matchesComparison(run: Run, c: Comparison): boolean {
  if (c.identifier.type === 'dataset') return datasetMatches(run, c);
  const actual = valueOf(run, c.identifier);
  if (c.comparator === 'IS NULL') return actual === undefined;
  if (c.comparator === 'IS NOT NULL') return actual !== undefined;
  if (actual === undefined) return false;
  return compare(actual, c);
}

export function matchesFilter(run: Run, filter: readonly Comparison[]): boolean {
  for (const c of filter) if (!matchesComparison(run, c)) return false;
  return true;
}

function isMissing(v: string | number | undefined): boolean {
  return v === undefined || (typeof v === 'number' && Number.isNaN(v));
}

/**
 * A comparator for Array.sort: the order_by clauses in turn (missing values and NaN last in
 * either direction), then MLflow's tiebreak start_time DESC, run_id ASC.
 */
export function runComparator(orderBy: readonly OrderByClause[]): (a: Run, b: Run) => number {
  return (a, b) => {
    for (const o of orderBy) {
      const va = valueOf(a, o.identifier);
      const vb = valueOf(b, o.identifier);
      const ma = isMissing(va);
      const mb = isMissing(vb);
      if (ma || mb) {
        if (ma && mb) continue;
        return ma ? 1 : -1;
      }
      let d = 0;
      if (typeof va === 'number' && typeof vb === 'number') d = va - vb;
      else {
        const sa = String(va);
        const sb = String(vb);
        d = sa < sb ? -1 : sa > sb ? 1 : 0;
      }
      if (d !== 0) return o.ascending ? d : -d;
    }
    if (a.info.startTime !== b.info.startTime) return b.info.startTime - a.info.startTime;
    return a.info.runId < b.info.runId ? -1 : a.info.runId > b.info.runId ? 1 : 0;
  };
}
