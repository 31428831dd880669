/** The runs table's columns: what each shows, how wide it is, and how the service sorts by it. */
import type { Run } from '../../../lib/mlflow/entities.ts';
import { formatDuration, formatNumber, formatTime } from './format.ts';

export type ColumnKind = 'attribute' | 'metric' | 'param' | 'tag';

export interface Column {
  /** Stable id: `metric:acc`, `attribute:start_time`... */
  id: string;
  kind: ColumnKind;
  key: string;
  label: string;
  width: number;
  /** The order_by identifier (without ASC/DESC); null when the service cannot sort by it. */
  orderBy: string | null;
  numeric: boolean;
  text(run: Run): string;
}

/** Backticks keep any key (spaces, dashes, dots) one identifier in MLflow's grammar. */
export function quoteKey(key: string): string {
  return `\`${key.replace(/`/g, '')}\``;
}

export const ATTRIBUTE_COLUMNS: Column[] = [
  {
    id: 'attribute:start_time',
    kind: 'attribute',
    key: 'start_time',
    label: 'Created',
    width: 150,
    orderBy: 'attributes.start_time',
    numeric: true,
    text: (r) => formatTime(r.info.startTime),
  },
  {
    id: 'attribute:duration',
    kind: 'attribute',
    key: 'duration',
    label: 'Duration',
    width: 80,
    orderBy: null,
    numeric: true,
    text: (r) => formatDuration(r.info.startTime, r.info.endTime),
  },
  {
    id: 'attribute:status',
    kind: 'attribute',
    key: 'status',
    label: 'Status',
    width: 90,
    orderBy: 'attributes.status',
    numeric: false,
    text: (r) => r.info.status,
  },
  {
    id: 'attribute:user_id',
    kind: 'attribute',
    key: 'user_id',
    label: 'User',
    width: 100,
    orderBy: 'attributes.user_id',
    numeric: false,
    text: (r) => r.info.userId,
  },
  {
    id: 'attribute:source',
    kind: 'attribute',
    key: 'source',
    label: 'Source',
    width: 120,
    orderBy: 'tags.`mlflow.source.name`',
    numeric: false,
    text: (r) => r.tags['mlflow.source.name'] ?? '',
  },
];

export function keyColumn(kind: Exclude<ColumnKind, 'attribute'>, key: string): Column {
  const prefix = kind === 'metric' ? 'metrics' : kind === 'param' ? 'params' : 'tags';
  return {
    id: `${kind}:${key}`,
    kind,
    key,
    label: key,
    width: kind === 'tag' ? 140 : 110,
    orderBy: `${prefix}.${quoteKey(key)}`,
    numeric: kind === 'metric',
    text:
      kind === 'metric'
        ? (r) => formatNumber(r.metrics[key]?.value)
        : kind === 'param'
          ? (r) => r.params[key] ?? ''
          : (r) => r.tags[key] ?? '',
  };
}

export interface KeySets {
  metrics: string[];
  params: string[];
  tags: string[];
}

/** Every metric, param and (non-system) tag key present in the runs, sorted. */
export function collectKeys(runs: readonly Run[]): KeySets {
  const m = new Set<string>();
  const p = new Set<string>();
  const t = new Set<string>();
  for (const r of runs) {
    for (const k in r.metrics) m.add(k);
    for (const k in r.params) p.add(k);
    for (const k in r.tags) if (!k.startsWith('mlflow.')) t.add(k);
  }
  const sort = (s: Set<string>) => [...s].sort((a, b) => a.localeCompare(b));
  return { metrics: sort(m), params: sort(p), tags: sort(t) };
}

export interface SortState {
  columnId: string;
  orderBy: string;
  ascending: boolean;
}

/** The service's own default order: newest first. */
export const DEFAULT_SORT: SortState = {
  columnId: 'attribute:start_time',
  orderBy: 'attributes.start_time',
  ascending: false,
};
