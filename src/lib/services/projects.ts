/**
 * Prompt-evaluation projects: the in-browser form of MLflow Projects. A project is a folder
 * with an MLproject file and a dataset (JSONL or CSV: `prompt`, optional `expected`). Running an
 * entry point against a model version is one MLflow run: the resolved parameters as params, the
 * per-row outputs as a table artifact (MLflow's `log_table` JSON), aggregate metrics. A run can
 * be cancelled and resumed: the table artifact written so far is where it picks up.
 */
import type { AnyDB } from '../store/db.ts';
import * as repo from '../store/conversations.ts';
import type { EvalProjectRecord } from '../store/conversations.ts';
import {
  MLprojectError,
  isMLprojectFileName,
  parseMLproject,
  renderCommand,
  resolveParameters,
  writeMLproject,
  type MLproject,
  type MLprojectEntryPoint,
  type ParameterValue,
} from '../mlflow/mlproject.ts';
import { openZip, readEntryText, zipToBlob, type ArchiveLimits } from '../archive/index.ts';
import type { TextGenerator } from '../inference/handle.ts';
import type { ChatMessage, GenerationParams } from '../inference/protocol.ts';
import { PROMPT_WRAPPER_DEFAULTS, toChatCompletion } from '../inference/adapters.ts';
import type { TrackingClient } from './tracking.ts';
import type { Run } from '../mlflow/entities.ts';

export type { EvalProjectRecord } from '../store/conversations.ts';

export const TABLE_ARTIFACT = 'eval_results_table.json';
export const EVAL_SOURCE_TYPE = 'PROJECT';

// ---------------------------------------------------------------- datasets

export interface DatasetRow {
  prompt: string;
  expected?: string;
}

export class DatasetError extends Error {
  override name = 'DatasetError';
  constructor(message: string, file: string, line?: number) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function scalarText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/** JSON Lines: one object per line with a string `prompt` and an optional `expected`. */
export function parseJsonl(text: string, file = 'data.jsonl'): DatasetRow[] {
  const rows: DatasetRow[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`not valid JSON (${(e as Error).message})`, file, i + 1);
    }
    if (!isObj(v)) throw new DatasetError('expected a JSON object per line', file, i + 1);
    if (typeof v.prompt !== 'string')
      throw new DatasetError('expected a string "prompt"', file, i + 1);
    const row: DatasetRow = { prompt: v.prompt };
    if (v.expected !== undefined && v.expected !== null) {
      const e = scalarText(v.expected);
      if (e === undefined)
        throw new DatasetError('"expected" must be a string or a number', file, i + 1);
      row.expected = e;
    }
    rows.push(row);
  }
  return rows;
}

/** RFC 4180 CSV into rows of fields; quoted fields may hold commas, quotes and newlines. */
export function parseCsvRecords(
  text: string,
  file = 'data.csv',
): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let atFieldStart = true;
  const src = text.startsWith('\ufeff') ? text.slice(1) : text;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (quoted) {
      if (c === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"' && atFieldStart) {
      quoted = true;
      atFieldStart = false;
    } else if (c === ',') {
      fields.push(field);
      field = '';
      atFieldStart = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      fields.push(field);
      if (!(fields.length === 1 && fields[0] === '')) out.push({ line: recordLine, fields });
      fields = [];
      field = '';
      atFieldStart = true;
      line++;
      recordLine = line;
    } else {
      if (c === '"') throw new DatasetError('a quote inside an unquoted field', file, line);
      field += c;
      atFieldStart = false;
    }
  }
  if (quoted) throw new DatasetError('a quoted field is not closed', file, recordLine);
  if (field !== '' || fields.length > 0) {
    fields.push(field);
    out.push({ line: recordLine, fields });
  }
  return out;
}

/** CSV with a header row holding `prompt` (and optionally `expected`). */
export function parseCsv(text: string, file = 'data.csv'): DatasetRow[] {
  const records = parseCsvRecords(text, file);
  const header = records.shift();
  if (!header) return [];
  const names = header.fields.map((f) => f.trim());
  const p = names.indexOf('prompt');
  if (p < 0)
    throw new DatasetError(
      `the header needs a "prompt" column, found ${names.map((n) => `"${n}"`).join(', ')}`,
      file,
      header.line,
    );
  const e = names.indexOf('expected');
  return records.map((r) => {
    if (r.fields.length !== names.length) {
      throw new DatasetError(
        `expected ${names.length} fields as in the header, found ${r.fields.length}`,
        file,
        r.line,
      );
    }
    const row: DatasetRow = { prompt: r.fields[p]! };
    if (e >= 0 && r.fields[e] !== '') row.expected = r.fields[e]!;
    return row;
  });
}

export function parseDataset(text: string, file: string): DatasetRow[] {
  if (/\.csv$/i.test(file)) return parseCsv(text, file);
  if (/\.jsonl?$/i.test(file)) return parseJsonl(text, file);
  throw new DatasetError('expected a .jsonl or .csv dataset', file);
}

/** Writes rows as JSON Lines (the dataset format new projects use). */
export function writeJsonl(rows: DatasetRow[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

// ---------------------------------------------------------------- projects

/** Parameter names an evaluation entry point may declare, and what the app does with them. */
export const EVAL_PARAMETERS = {
  dataset: 'the dataset file in the project (JSONL or CSV)',
  system_prompt: 'system message of every request (chat models) or of the prompt markup',
  prompt_template: 'how a row becomes the user message; {prompt} is replaced by the row',
  temperature: 'sampling temperature (0: greedy)',
  top_p: 'nucleus sampling',
  top_k: 'top-k sampling',
  max_tokens: 'new tokens per answer',
  seed: 'sampling seed',
  stop: 'a stop sequence',
  limit: 'evaluate only the first rows (0: all)',
} as const;

export function defaultMLproject(name: string, dataset = 'data.jsonl'): MLproject {
  return {
    name,
    pythonEnv: 'python_env.yaml',
    entryPoints: [
      {
        name: 'main',
        parameters: [
          { name: 'dataset', type: 'path', default: dataset },
          { name: 'system_prompt', type: 'string', default: 'You answer in one short sentence.' },
          { name: 'prompt_template', type: 'string', default: '{prompt}' },
          { name: 'temperature', type: 'float', default: 0 },
          { name: 'max_tokens', type: 'int', default: 64 },
        ],
        command:
          'python evaluate.py --dataset {dataset} --system-prompt {system_prompt} --prompt-template {prompt_template} --temperature {temperature} --max-tokens {max_tokens}',
      },
    ],
    extra: {},
  };
}

const PYTHON_ENV = `python: "3.10"
build_dependencies:
- pip
dependencies:
- mlflow
- pandas
`;

// The same evaluation for `mlflow run`: a model URI from MLFLOW_MODEL_URI, the same metrics and table.
const EVALUATE_PY = `import argparse
import json
import os
import time

import mlflow
import pandas as pd

p = argparse.ArgumentParser()
p.add_argument("--dataset", required=True)
p.add_argument("--system-prompt", default="")
p.add_argument("--prompt-template", default="{prompt}")
p.add_argument("--temperature", type=float, default=0.0)
p.add_argument("--max-tokens", type=int, default=64)
a = p.parse_args()

rows = pd.read_csv(a.dataset) if a.dataset.endswith(".csv") else pd.read_json(a.dataset, lines=True)
model = mlflow.pyfunc.load_model(os.environ["MLFLOW_MODEL_URI"])
out = []
for r in rows.to_dict("records"):
    user = a.prompt_template.replace("{prompt}", str(r["prompt"]))
    t0 = time.time()
    msgs = ([{"role": "system", "content": a.system_prompt}] if a.system_prompt else []) + [{"role": "user", "content": user}]
    try:
        res = model.predict({"messages": msgs, "temperature": a.temperature, "max_tokens": a.max_tokens})
        text = res[0]["choices"][0]["message"]["content"] if isinstance(res, list) and isinstance(res[0], dict) else str(res[0])
    except Exception:
        prompt = (f"<|system|>\\n{a.system_prompt}<|end|>\\n" if a.system_prompt else "") + f"<|user|>\\n{user}<|end|>\\n<|assistant|>\\n"
        text = str(model.predict({"prompt": [prompt]})[0])
    exp = r.get("expected")
    out.append({"prompt": r["prompt"], "expected": exp, "output": text, "latency_ms": (time.time() - t0) * 1000})
table = pd.DataFrame(out)
mlflow.log_table(table, "${'eval_results_table.json'}")
mlflow.log_metric("mean_latency_ms", float(table["latency_ms"].mean()))
if "expected" in table and table["expected"].notna().any():
    t = table[table["expected"].notna()]
    mlflow.log_metric("exact_match_rate", float((t["output"].str.strip() == t["expected"].astype(str).str.strip()).mean()))
    mlflow.log_metric("contains_expected_rate", float(t.apply(lambda x: str(x["expected"]).strip().lower() in str(x["output"]).lower(), axis=1).mean()))
`;

export interface NewProject {
  name: string;
  /** Dataset rows, written as data.jsonl; or a dataset file's text and name. */
  rows?: DatasetRow[];
  dataset?: { name: string; text: string };
}

function checkProjectName(name: string): string {
  const n = name.trim();
  if (!n) throw new Error('A project needs a name.');
  if (n.length > 100) throw new Error('Project names are at most 100 characters.');
  return n;
}

/** A new project: MLproject, python_env.yaml, evaluate.py and the dataset. */
export async function createProject(db: AnyDB, input: NewProject): Promise<EvalProjectRecord> {
  const name = checkProjectName(input.name);
  const datasetName = input.dataset?.name ?? 'data.jsonl';
  const datasetText = input.dataset?.text ?? writeJsonl(input.rows ?? []);
  parseDataset(datasetText, datasetName);
  const now = Date.now();
  const rec: EvalProjectRecord = {
    id: crypto.randomUUID(),
    name,
    createdAt: now,
    updatedAt: now,
    files: {
      MLproject: writeMLproject(defaultMLproject(name, datasetName)),
      'python_env.yaml': PYTHON_ENV,
      'evaluate.py': EVALUATE_PY,
      [datasetName]: datasetText,
    },
  };
  await repo.putEvalProject(db, rec);
  return rec;
}

export const listProjects = repo.listEvalProjects;
export const getProject = repo.getEvalProject;
export const deleteProject = repo.deleteEvalProject;

/** Saves an edited file (MLproject or dataset); both are checked before anything is written. */
export async function saveProjectFile(
  db: AnyDB,
  id: string,
  path: string,
  text: string,
): Promise<EvalProjectRecord> {
  const rec = await repo.getEvalProject(db, id);
  if (!rec) throw new Error(`Project '${id}' not found`);
  if (isMLprojectFileName(path)) parseMLproject(text, path);
  else if (/\.(jsonl?|csv)$/i.test(path)) parseDataset(text, path);
  rec.files[path] = text;
  rec.updatedAt = Date.now();
  await repo.putEvalProject(db, rec);
  return rec;
}

export function projectSpec(rec: EvalProjectRecord): MLproject {
  const key = Object.keys(rec.files).find(isMLprojectFileName);
  if (!key) throw new MLprojectError('the project has no MLproject file');
  return parseMLproject(rec.files[key]!, key);
}

/** Limits for project zips: small text projects, not model weights. */
export const PROJECT_ZIP_LIMITS: Partial<ArchiveLimits> = {
  maxEntries: 200,
  maxTotalSize: 64 * 2 ** 20,
  maxEntrySize: 32 * 2 ** 20,
};

const TEXT_FILE = /(^|\/)(MLproject|[^/]+\.(jsonl?|csv|ya?ml|py|md|txt|r|sh))$/i;

/**
 * Imports a project zip: MLproject at the top or in one top-level folder. The archive guards
 * (traversal, counts, sizes, ratios) run on the directory before any entry is read; only text
 * files are kept, and the MLproject and the dataset are parsed before anything is stored.
 */
export async function importProjectZip(
  db: AnyDB,
  zip: Blob & { name?: string },
): Promise<EvalProjectRecord> {
  const fileName = zip.name ?? 'project.zip';
  const archive = await openZip(zip, { fileName, limits: PROJECT_ZIP_LIMITS });
  const files = archive.entries.filter((e) => !e.isDirectory);
  const ml = files
    .filter((e) => isMLprojectFileName(e.path.slice(e.path.lastIndexOf('/') + 1)))
    .sort((a, b) => a.path.split('/').length - b.path.split('/').length)[0];
  if (!ml || ml.path.split('/').length > 2) {
    throw new MLprojectError(
      'no MLproject file at the top of the zip or in its top-level folder',
      fileName,
    );
  }
  const root = ml.path.slice(0, ml.path.length - 'MLproject'.length);
  const out: Record<string, string> = {};
  for (const e of files) {
    if (!e.path.startsWith(root)) continue;
    const rel = e.path.slice(root.length);
    if (!TEXT_FILE.test(rel)) continue;
    out[rel] = await readEntryText(e);
  }
  const mlKey = ml.path.slice(root.length);
  const spec = parseMLproject(out[mlKey]!, `${fileName}/${ml.path}`);
  const now = Date.now();
  const rec: EvalProjectRecord = {
    id: crypto.randomUUID(),
    name: spec.name ?? (root.replace(/\/$/, '') || fileName.replace(/\.zip$/i, '')),
    createdAt: now,
    updatedAt: now,
    files: out,
  };
  for (const ep of spec.entryPoints) {
    const ds = ep.parameters.find((p) => p.name === 'dataset')?.default;
    if (typeof ds === 'string' && out[ds] !== undefined) parseDataset(out[ds], ds);
  }
  await repo.putEvalProject(db, rec);
  return rec;
}

/** The project folder as a zip (folder named after the project), ready for `mlflow run`. */
export async function exportProjectZip(rec: EvalProjectRecord): Promise<Blob> {
  const folder = rec.name.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'project';
  const enc = new TextEncoder();
  return zipToBlob(
    Object.entries(rec.files)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([path, text]) => ({ path: `${folder}/${path}`, data: enc.encode(text) })),
  );
}

// ---------------------------------------------------------------- running an evaluation

export interface EvalTarget {
  name: string;
  version: string;
  kind: 'chat' | 'prompt';
  backend: string;
}

export interface EvalRow {
  row: number;
  prompt: string;
  expected: string | null;
  output: string;
  exact_match: boolean | null;
  contains_expected: boolean | null;
  latency_ms: number;
  ttft_ms: number;
  tokens_per_second: number;
  prompt_tokens: number;
  completion_tokens: number;
  finish_reason: string;
}

export const TABLE_COLUMNS: (keyof EvalRow)[] = [
  'row',
  'prompt',
  'expected',
  'output',
  'exact_match',
  'contains_expected',
  'latency_ms',
  'ttft_ms',
  'tokens_per_second',
  'prompt_tokens',
  'completion_tokens',
  'finish_reason',
];

/** MLflow's table artifact (mlflow.log_table): pandas' split orientation without the index. */
export interface TableArtifact {
  columns: string[];
  data: unknown[][];
}

export function toTable(rows: EvalRow[]): TableArtifact {
  return { columns: [...TABLE_COLUMNS], data: rows.map((r) => TABLE_COLUMNS.map((c) => r[c])) };
}

/** Reads a table artifact into records (column name -> value); errors name what is wrong. */
export function tableRecords(value: unknown, file = TABLE_ARTIFACT): Record<string, unknown>[] {
  if (!isObj(value) || !Array.isArray(value.columns) || !Array.isArray(value.data)) {
    throw new Error(`${file}: expected {"columns": [...], "data": [[...]]}`);
  }
  const cols = value.columns.map(String);
  return (value.data as unknown[]).map((row, i) => {
    if (!Array.isArray(row) || row.length !== cols.length)
      throw new Error(`${file}: data[${i}] must be a list of ${cols.length} values`);
    return Object.fromEntries(cols.map((c, j) => [c, row[j]]));
  });
}

function fromRecord(r: Record<string, unknown>): EvalRow {
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  const b = (v: unknown) => (typeof v === 'boolean' ? v : null);
  return {
    row: n(r.row),
    prompt: String(r.prompt ?? ''),
    expected: typeof r.expected === 'string' ? r.expected : null,
    output: String(r.output ?? ''),
    exact_match: b(r.exact_match),
    contains_expected: b(r.contains_expected),
    latency_ms: n(r.latency_ms),
    ttft_ms: n(r.ttft_ms),
    tokens_per_second: n(r.tokens_per_second),
    prompt_tokens: n(r.prompt_tokens),
    completion_tokens: n(r.completion_tokens),
    finish_reason: String(r.finish_reason ?? ''),
  };
}

export function evalMetrics(rows: EvalRow[]): Record<string, number> {
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const m: Record<string, number> = {
    rows_evaluated: rows.length,
    mean_latency_ms: mean(rows.map((r) => r.latency_ms)),
    mean_time_to_first_token_ms: mean(rows.map((r) => r.ttft_ms)),
    mean_tokens_per_second: mean(rows.map((r) => r.tokens_per_second)),
    total_completion_tokens: rows.reduce((a, r) => a + r.completion_tokens, 0),
  };
  const withExpected = rows.filter((r) => r.expected !== null);
  if (withExpected.length > 0) {
    m.exact_match_rate = mean(withExpected.map((r) => (r.exact_match ? 1 : 0)));
    m.contains_expected_rate = mean(withExpected.map((r) => (r.contains_expected ? 1 : 0)));
  }
  return m;
}

const norm = (s: string) => s.trim().replace(/\s+/g, ' ');

export function scoreAnswer(output: string, expected: string | null) {
  if (expected === null) return { exact_match: null, contains_expected: null };
  return {
    exact_match: norm(output) === norm(expected),
    contains_expected: norm(output).toLowerCase().includes(norm(expected).toLowerCase()),
  };
}

export interface EvalProgress {
  done: number;
  total: number;
  runId: string;
  last?: EvalRow;
}

export interface RunEvaluationOptions {
  db: AnyDB;
  tracking: TrackingClient;
  generator: TextGenerator;
  project: EvalProjectRecord;
  entryPoint: string;
  /** Values the user gave for the entry point's parameters (strings from the form, or typed). */
  values: Record<string, ParameterValue | undefined>;
  target: EvalTarget;
  /** Continue a cancelled (KILLED) evaluation run from the rows its table already has. */
  resumeRunId?: string;
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Rows between checkpoints of the table artifact (default 5). */
  checkpointEvery?: number;
}

export interface EvaluationResult {
  runId: string;
  status: 'FINISHED' | 'KILLED';
  rows: EvalRow[];
  metrics: Record<string, number>;
}

function entryPointOf(spec: MLproject, name: string): MLprojectEntryPoint {
  const ep = spec.entryPoints.find((e) => e.name === name);
  if (!ep) {
    throw new MLprojectError(
      `no entry point '${name}'; the project has ${spec.entryPoints.map((e) => `'${e.name}'`).join(', ') || 'none'}`,
    );
  }
  return ep;
}

function phi3Prompt(system: string, user: string): string {
  return `${system ? `<|system|>\n${system}<|end|>\n` : ''}<|user|>\n${user}<|end|>\n<|assistant|>\n`;
}

export interface PreparedEvaluation {
  spec: MLproject;
  entryPoint: MLprojectEntryPoint;
  params: Record<string, string | number>;
  extra: Record<string, string>;
  command: string;
  datasetPath: string;
  rows: DatasetRow[];
  generation: GenerationParams;
  systemPrompt: string;
  template: string;
}

/** Resolves an entry point's parameters and reads its dataset (nothing runs yet). */
export function prepareEvaluation(
  project: EvalProjectRecord,
  entryPoint: string,
  values: Record<string, ParameterValue | undefined>,
  kind: 'chat' | 'prompt',
): PreparedEvaluation {
  const spec = projectSpec(project);
  const ep = entryPointOf(spec, entryPoint);
  const resolved = resolveParameters(ep, values);
  const v = resolved.values;
  const datasetPath = String(
    v.dataset ?? Object.keys(project.files).find((f) => /\.(jsonl?|csv)$/i.test(f)) ?? '',
  );
  const text = project.files[datasetPath];
  if (text === undefined)
    throw new DatasetError(`the dataset '${datasetPath}' is not in the project`, datasetPath);
  let rows = parseDataset(text, datasetPath);
  const limit = typeof v.limit === 'number' ? v.limit : Number(v.limit ?? 0);
  if (limit > 0) rows = rows.slice(0, limit);
  const generation: GenerationParams =
    kind === 'prompt' ? { ...PROMPT_WRAPPER_DEFAULTS } : { max_tokens: 256 };
  for (const k of ['temperature', 'top_p', 'top_k', 'max_tokens', 'seed'] as const) {
    if (v[k] !== undefined && v[k] !== '')
      (generation as Record<string, unknown>)[k] = Number(v[k]);
  }
  if (typeof v.stop === 'string' && v.stop !== '') generation.stop = [v.stop];
  const template =
    typeof v.prompt_template === 'string' && v.prompt_template ? v.prompt_template : '{prompt}';
  return {
    spec,
    entryPoint: ep,
    params: v,
    extra: resolved.extra,
    command: renderCommand(ep, resolved),
    datasetPath,
    rows,
    generation,
    systemPrompt: typeof v.system_prompt === 'string' ? v.system_prompt : '',
    template,
  };
}

async function digestOf(text: string): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d).slice(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Runs an entry point over the dataset, one request per row, as one MLflow run. Cancelling
 * (the signal) stops after the current row, writes the table so far and ends the run KILLED;
 * `resumeRunId` continues such a run.
 */
export async function runEvaluation(opts: RunEvaluationOptions): Promise<EvaluationResult> {
  const { tracking, project, target } = opts;
  let values = opts.values;
  if (opts.resumeRunId) {
    // A resumed run goes on with the parameter values it was started with.
    const logged = (await tracking.getRun(opts.resumeRunId)).params;
    const declared = projectSpec(project).entryPoints.find((e) => e.name === opts.entryPoint);
    values = { ...opts.values };
    for (const p of declared?.parameters ?? [])
      if (p.name in logged) values[p.name] = logged[p.name];
  }
  const prep = prepareEvaluation(project, opts.entryPoint, values, target.kind);
  const every = opts.checkpointEvery ?? 5;
  let runId: string;
  let rows: EvalRow[] = [];
  if (opts.resumeRunId) {
    runId = opts.resumeRunId;
    const run = await tracking.getRun(runId);
    if (run.tags['mlflow.project.entryPoint'] !== prep.entryPoint.name)
      throw new Error(
        `Run ${run.info.runName} is not an evaluation of entry point '${prep.entryPoint.name}'.`,
      );
    try {
      rows = tableRecords(JSON.parse(await tracking.readArtifactText(runId, TABLE_ARTIFACT))).map(
        fromRecord,
      );
    } catch {
      rows = [];
    }
    await tracking.updateRun(runId, { status: 'RUNNING', endTime: null });
  } else {
    const expName = prep.spec.name ?? project.name;
    const existing = await tracking.getExperimentByName(expName);
    const experimentId =
      existing?.lifecycleStage === 'active'
        ? existing.experimentId
        : await tracking.createExperiment(existing ? `${expName} (evaluations)` : expName);
    const info = await tracking.startRun({
      experimentId,
      sourceName: project.name,
      tags: {
        'mlflow.source.type': EVAL_SOURCE_TYPE,
        'mlflow.project.entryPoint': prep.entryPoint.name,
        'mlflow.project.backend': 'local',
        'mlflow.project.env': 'tabflow-browser',
        'mlflow.loggedArtifacts': JSON.stringify([{ path: TABLE_ARTIFACT, type: 'table' }]),
        'tabflow.eval.project_id': project.id,
        'tabflow.model': `models:/${target.name}/${target.version}`,
      },
    });
    runId = info.runId;
    const params: Record<string, string> = {
      model_name: target.name,
      model_version: target.version,
      backend: target.backend,
      entry_point: prep.entryPoint.name,
      rows: String(prep.rows.length),
    };
    for (const [k, v] of Object.entries(prep.params)) params[k] = String(v);
    for (const [k, v] of Object.entries(prep.extra)) params[k] = v;
    await tracking.logParams(runId, params);
    const text = project.files[prep.datasetPath]!;
    await tracking.logInputs(runId, [
      {
        dataset: {
          name: prep.datasetPath,
          digest: await digestOf(text),
          sourceType: 'local',
          source: JSON.stringify({ uri: `${project.name}/${prep.datasetPath}` }),
          schema: JSON.stringify({
            mlflow_colspec: [
              { type: 'string', name: 'prompt', required: true },
              { type: 'string', name: 'expected', required: false },
            ],
          }),
          profile: JSON.stringify({ num_rows: prep.rows.length }),
        },
        tags: { 'mlflow.data.context': 'eval' },
      },
    ]);
    await tracking.logText(runId, prep.command + '\n', 'command.txt');
  }

  const checkpoint = () => tracking.logDict(runId, toTable(rows), TABLE_ARTIFACT);
  const total = prep.rows.length;
  opts.onProgress?.({ done: rows.length, total, runId });
  let cancelled = false;
  try {
    for (let i = rows.length; i < total; i++) {
      if (opts.signal?.aborted) {
        cancelled = true;
        break;
      }
      const data = prep.rows[i]!;
      const user = prep.template.split('{prompt}').join(data.prompt);
      const t0 = performance.now();
      const handle =
        target.kind === 'chat'
          ? opts.generator.generate(
              {
                kind: 'chat',
                messages: [
                  ...(prep.systemPrompt
                    ? [{ role: 'system', content: prep.systemPrompt } as ChatMessage]
                    : []),
                  { role: 'user', content: user },
                ],
              },
              { ...prep.generation, n: 1 },
            )
          : opts.generator.generate(
              { kind: 'prompt', prompt: phi3Prompt(prep.systemPrompt, user) },
              { ...prep.generation, n: 1 },
            );
      const onAbort = () => handle.interrupt();
      opts.signal?.addEventListener('abort', onAbort);
      let done;
      try {
        done = await handle.result;
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
      if (done.interrupted) {
        cancelled = true;
        break;
      }
      const output =
        target.kind === 'chat'
          ? toChatCompletion(done, { model: target.name }).choices[0]!.message.content
          : done.text;
      const expected = data.expected ?? null;
      const row: EvalRow = {
        row: i,
        prompt: data.prompt,
        expected,
        output,
        ...scoreAnswer(output, expected),
        latency_ms: Math.round((performance.now() - t0) * 10) / 10,
        ttft_ms: Math.round(done.timings.ttftMs * 10) / 10,
        tokens_per_second: Math.round(done.timings.tokensPerSecond * 100) / 100,
        prompt_tokens: done.usage.prompt_tokens,
        completion_tokens: done.usage.completion_tokens,
        finish_reason: done.finishReason,
      };
      rows.push(row);
      opts.onProgress?.({ done: rows.length, total, runId, last: row });
      if (rows.length % every === 0) await checkpoint();
    }
  } catch (e) {
    await checkpoint().catch(() => undefined);
    await tracking.endRun(runId, 'FAILED').catch(() => undefined);
    throw e;
  }
  await checkpoint();
  const metrics = evalMetrics(rows);
  await tracking.logMetrics(runId, metrics);
  const status = cancelled ? 'KILLED' : 'FINISHED';
  await tracking.endRun(runId, status);
  return { runId, status, rows, metrics };
}

export interface EvaluationView {
  run: Run;
  rows: EvalRow[];
}

/** An evaluation run and its table, for the compare view. */
export async function readEvaluation(
  tracking: TrackingClient,
  runId: string,
): Promise<EvaluationView> {
  const run = await tracking.getRun(runId);
  let rows: EvalRow[] = [];
  try {
    rows = tableRecords(JSON.parse(await tracking.readArtifactText(runId, TABLE_ARTIFACT))).map(
      fromRecord,
    );
  } catch {
    rows = [];
  }
  return { run, rows };
}

/** Evaluation runs of a project (newest first), across the experiments it logged to. */
export async function listEvaluationRuns(
  tracking: TrackingClient,
  project: EvalProjectRecord,
): Promise<Run[]> {
  const names = new Set([project.name]);
  try {
    if (projectSpec(project).name) names.add(projectSpec(project).name!);
  } catch {
    // an unreadable MLproject: the project's own name still finds its runs
  }
  const out: Run[] = [];
  for (const name of names) {
    for (const n of [name, `${name} (evaluations)`]) {
      const exp = await tracking.getExperimentByName(n);
      if (!exp) continue;
      const { runs } = await tracking.searchRuns({
        experimentIds: [exp.experimentId],
        filter: `tags.\`tabflow.eval.project_id\` = '${project.id}'`,
        orderBy: ['attributes.start_time DESC'],
        maxResults: 200,
      });
      out.push(...runs);
    }
  }
  return out;
}
