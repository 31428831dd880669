import { parseDocument, YAMLParseError } from 'yaml';
import { dumpPyYaml } from './pyyaml.ts';
import {
  parseSignature,
  signatureToStrings,
  SignatureParseError,
  type Signature,
} from './signature.ts';

/**
 * The MLmodel file (mlflow/models/model.py): read with the `yaml` package, written as PyYAML
 * writes it. Top-level keys MLflow knows are typed (camelCase here); flavor blocks stay the
 * snake_case maps MLflow writes, typed for the flavors the app serves. Unknown keys and
 * unknown flavors are kept, in the order they were read.
 */

export interface PythonFunctionArtifact {
  path: string;
  uri?: string;
  [key: string]: unknown;
}

export interface PythonFunctionFlavor {
  loader_module?: string;
  python_version?: string;
  /** `{conda, virtualenv}`; MLflow < 2.0 wrote a plain file name. */
  env?: string | { conda?: string; virtualenv?: string; [key: string]: unknown };
  code?: string | null;
  data?: string;
  model_config?: Record<string, unknown> | null;
  model_code_path?: string;
  python_model?: string;
  python_model_compression?: string;
  cloudpickle_version?: string;
  artifacts?: Record<string, PythonFunctionArtifact>;
  streamable?: boolean;
  predict_fn?: string;
  [key: string]: unknown;
}

export interface TransformersFlavor {
  task?: string;
  instance_type?: string;
  framework?: string;
  torch_dtype?: string;
  pipeline_model_type?: string;
  source_model_name?: string;
  /** `model`: weights saved in the folder. */
  model_binary?: string;
  /** Present instead of model_binary for reference-only models. */
  source_model_revision?: string;
  components?: string[];
  peft_adaptor?: string;
  inference_task?: string;
  transformers_version?: string;
  code?: string | null;
  [key: string]: unknown;
}

export interface OnnxFlavor {
  code?: string | null;
  data?: string;
  onnx_session_options?: Record<string, unknown> | null;
  onnx_version?: string;
  providers?: string[];
  [key: string]: unknown;
}

export interface Flavors {
  python_function?: PythonFunctionFlavor;
  transformers?: TransformersFlavor;
  onnx?: OnnxFlavor;
  [flavor: string]: Record<string, unknown> | undefined;
}

export interface SavedInputExampleInfo {
  artifact_path: string;
  type: string;
  pandas_orient?: 'split' | 'values' | string;
  serving_input_path?: string;
  /** A string in MLflow's files: 'true' when params were given. */
  params?: string;
  format?: string;
  [key: string]: unknown;
}

export interface MLmodel {
  artifactPath?: string | null;
  databricksRuntime?: string;
  flavors: Flavors;
  modelUuid?: string;
  modelId?: string | null;
  runId?: string | null;
  utcTimeCreated?: string;
  mlflowVersion?: string;
  /** null when MLmodel says `signature: null`; absent when the key is absent. */
  signature?: Signature | null;
  isSignatureFromTypeHint?: boolean;
  typeHintFromExample?: boolean;
  savedInputExampleInfo?: SavedInputExampleInfo;
  metadata?: Record<string, unknown> | null;
  modelSizeBytes?: number | null;
  prompts?: unknown;
  resources?: Record<string, unknown> | null;
  authPolicy?: Record<string, unknown> | null;
  envVars?: string[] | null;
  /** Keys this version of the app does not know, in file order. */
  extra: Record<string, unknown>;
}

/** The camelCase field for each MLmodel key, in one place so reading and writing agree. */
const KNOWN_KEYS = {
  artifact_path: 'artifactPath',
  databricks_runtime: 'databricksRuntime',
  flavors: 'flavors',
  model_uuid: 'modelUuid',
  model_id: 'modelId',
  run_id: 'runId',
  utc_time_created: 'utcTimeCreated',
  mlflow_version: 'mlflowVersion',
  signature: 'signature',
  is_signature_from_type_hint: 'isSignatureFromTypeHint',
  type_hint_from_example: 'typeHintFromExample',
  saved_input_example_info: 'savedInputExampleInfo',
  metadata: 'metadata',
  model_size_bytes: 'modelSizeBytes',
  prompts: 'prompts',
  resources: 'resources',
  auth_policy: 'authPolicy',
  env_vars: 'envVars',
} as const satisfies Record<string, keyof MLmodel>;

type KnownKey = keyof typeof KNOWN_KEYS;

export class MLmodelError extends Error {
  override name = 'MLmodelError';
  constructor(
    message: string,
    /** The file the error is in (default `MLmodel`). */
    readonly file = 'MLmodel',
    readonly line?: number,
    readonly key?: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function expect(
  cond: boolean,
  key: string,
  expected: string,
  got: unknown,
  file: string,
): asserts cond {
  if (!cond) {
    throw new MLmodelError(
      `key '${key}': expected ${expected}, got ${JSON.stringify(got) ?? String(got)}`,
      file,
      undefined,
      key,
    );
  }
}

/** An MLmodel file is a few KB; anything this big is refused before parsing (8 MiB of text). */
export const MAX_MLMODEL_CHARS = 8 * 1024 * 1024;

/** Reads MLmodel text. Errors name the file, the line (for YAML syntax) or the key. */
export function parseMLmodel(text: string, file = 'MLmodel'): MLmodel {
  if (text.length > MAX_MLMODEL_CHARS) {
    throw new MLmodelError(
      `too large to be an MLmodel file (${text.length} characters; at most ${MAX_MLMODEL_CHARS} are read)`,
      file,
    );
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const line = firstError instanceof YAMLParseError ? firstError.linePos?.[0]?.line : undefined;
    throw new MLmodelError(`not valid YAML (${firstError.message.split('\n')[0]})`, file, line);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // The yaml package stops alias expansion bombs ("billion laughs") with a ReferenceError.
    throw new MLmodelError(
      `YAML aliases expand too far (${e instanceof Error ? e.message : String(e)})`,
      file,
    );
  }
  if (!isObj(raw)) {
    throw new MLmodelError(`expected a YAML mapping at the top level, got ${describe(raw)}`, file);
  }
  if (!('flavors' in raw))
    throw new MLmodelError("missing the required key 'flavors'", file, undefined, 'flavors');
  const flavors = raw.flavors;
  expect(isObj(flavors), 'flavors', 'a mapping of flavor name to its configuration', flavors, file);
  for (const [name, conf] of Object.entries(flavors)) {
    expect(isObj(conf), `flavors.${name}`, 'a mapping', conf, file);
  }
  const model: MLmodel = { flavors: flavors as Flavors, extra: {} };
  for (const [key, value] of Object.entries(raw)) {
    if (!(key in KNOWN_KEYS)) {
      model.extra[key] = value;
      continue;
    }
    const field = KNOWN_KEYS[key as KnownKey];
    switch (key as KnownKey) {
      case 'flavors':
        break;
      case 'signature':
        if (value === null) model.signature = null;
        else {
          expect(isObj(value), 'signature', 'a mapping with inputs, outputs, params', value, file);
          try {
            model.signature = parseSignature(value);
          } catch (e) {
            if (e instanceof SignatureParseError) {
              throw new MLmodelError(e.message, file, undefined, e.where);
            }
            throw e;
          }
        }
        break;
      case 'saved_input_example_info':
        expect(
          isObj(value) && typeof value.artifact_path === 'string',
          key,
          'a mapping with artifact_path',
          value,
          file,
        );
        model.savedInputExampleInfo = value as SavedInputExampleInfo;
        break;
      case 'is_signature_from_type_hint':
      case 'type_hint_from_example':
        expect(typeof value === 'boolean', key, 'true or false', value, file);
        (model as unknown as Record<string, unknown>)[field] = value;
        break;
      case 'model_size_bytes':
        expect(value === null || typeof value === 'number', key, 'a number', value, file);
        model.modelSizeBytes = value as number | null;
        break;
      case 'metadata':
      case 'resources':
      case 'auth_policy':
        expect(value === null || isObj(value), key, 'a mapping', value, file);
        (model as unknown as Record<string, unknown>)[field] = value;
        break;
      case 'env_vars':
        expect(value === null || Array.isArray(value), key, 'a list of names', value, file);
        model.envVars = value as string[] | null;
        break;
      case 'prompts':
        model.prompts = value;
        break;
      default: {
        // String-valued keys. PyYAML readers would turn an unquoted 3.10 into a float; MLflow
        // always quotes such values, but hand-written files may not: keep them as text.
        expect(
          value === null || typeof value === 'string' || typeof value === 'number',
          key,
          'a string',
          value,
          file,
        );
        (model as unknown as Record<string, unknown>)[field] =
          typeof value === 'number' ? String(value) : value;
      }
    }
  }
  return model;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'an empty document';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

/** The MLmodel as the plain dict MLflow's `Model.to_dict()` gives (snake_case keys). */
export function mlmodelToDict(model: MLmodel): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(KNOWN_KEYS)) {
    const v = (model as unknown as Record<string, unknown>)[field];
    if (v === undefined) continue;
    if (key === 'signature') out.signature = v === null ? null : signatureToStrings(v as Signature);
    else out[key] = v;
  }
  for (const [k, v] of Object.entries(model.extra)) if (!(k in out)) out[k] = v;
  return out;
}

export interface WriteMLmodelOptions {
  /** MLflow sorts keys (PyYAML's default); false keeps the order the keys were read in. */
  sortKeys?: boolean;
}

/** Writes MLmodel text as MLflow's `Model.save` does (PyYAML safe_dump, sorted keys). */
export function writeMLmodel(model: MLmodel, opts: WriteMLmodelOptions = {}): string {
  return dumpPyYaml(mlmodelToDict(model), { sortKeys: opts.sortKeys ?? true });
}

// ---------------------------------------------------------------- questions about a model

/** The `task` an LLM-shaped model answers (`llm/v1/chat`, ...), from the flavor or metadata. */
export function inferenceTask(model: MLmodel): string | undefined {
  const t = model.flavors.transformers?.inference_task;
  if (typeof t === 'string') return t;
  const m = model.metadata?.task;
  return typeof m === 'string' ? m : undefined;
}

/** True when a transformers model only references its weights on the Hub. */
export function isReferenceOnly(model: MLmodel): boolean {
  const tf = model.flavors.transformers;
  if (!tf) return false;
  return tf.model_binary === undefined && typeof tf.source_model_revision === 'string';
}

/** The pyfunc artifacts: name -> path inside the model folder. */
export function pyfuncArtifacts(model: MLmodel): Record<string, string> {
  const arts = model.flavors.python_function?.artifacts;
  const out: Record<string, string> = {};
  if (!isObj(arts)) return out;
  for (const [name, a] of Object.entries(arts)) {
    if (isObj(a) && typeof a.path === 'string') out[name] = a.path;
  }
  return out;
}

// ---------------------------------------------------------------- how the app can serve it

export type ServableKind = 'chat' | 'prompt' | 'onnx';

/**
 * - `web`: an ONNX export in the transformers.js layout (config.json, onnx/*.onnx, tokenizer).
 * - `genai`: an onnxruntime-genai folder (genai_config.json, the .onnx and its .onnx.data).
 * - `reference`: no usable weights in the model; resolve `sourceModelName` to an ONNX export.
 * - `onnx`: a plain ONNX graph (onnx flavor).
 */
export type ServableLayout = 'web' | 'genai' | 'reference' | 'onnx';

export interface ServableFiles {
  /** The graph the engine should load (model-relative path). */
  model?: string;
  /** Every .onnx graph found in the folder, best first (web layout: q4f16, q4, ...). */
  graphs?: string[];
  /** External weight files next to the graph (.onnx.data, .onnx_data, onnx sidecars). */
  externalData?: string[];
  config?: string;
  generationConfig?: string;
  genaiConfig?: string;
  tokenizer?: string;
  tokenizerConfig?: string;
  specialTokensMap?: string;
  addedTokens?: string;
}

/** What the inference layer needs to know to serve a model version. */
export interface ServableDescriptor {
  kind: ServableKind;
  layout: ServableLayout;
  /** The folder holding the weights, model-relative, '' for the root or ending in '/'. */
  root: string;
  files: ServableFiles;
  /** The LLM task (`llm/v1/chat`) when the model declares one. */
  task?: string;
  /** Hugging Face id of the weights (transformers flavor). */
  sourceModelName?: string;
  sourceModelRevision?: string;
  /** The pyfunc artifact holding the genai folder. */
  artifactName?: string;
}

const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '');
const baseOf = (p: string) => p.slice(p.lastIndexOf('/') + 1);

const WEB_GRAPH_PREFERENCE = [
  '_q4f16.onnx',
  '_q4.onnx',
  '_int4.onnx',
  '_quantized.onnx',
  '_fp16.onnx',
  '.onnx',
];

function rankGraphs(graphs: string[]): string[] {
  const rank = (p: string) => {
    const i = WEB_GRAPH_PREFERENCE.findIndex((suffix) => p.endsWith(suffix));
    return i < 0 ? WEB_GRAPH_PREFERENCE.length : i;
  };
  return [...graphs].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function firstIn(paths: Set<string>, dirs: string[], name: string): string | undefined {
  for (const d of dirs) if (paths.has(d + name)) return d + name;
  return undefined;
}

function tokenizerFiles(paths: Set<string>, dirs: string[]): ServableFiles {
  const files: ServableFiles = {};
  const set = (k: keyof ServableFiles, name: string) => {
    const p = firstIn(paths, dirs, name);
    if (p !== undefined) (files as Record<string, unknown>)[k] = p;
  };
  set('tokenizer', 'tokenizer.json');
  set('tokenizerConfig', 'tokenizer_config.json');
  set('specialTokensMap', 'special_tokens_map.json');
  set('addedTokens', 'added_tokens.json');
  return files;
}

function genaiDescriptor(
  paths: string[],
  configPath: string,
): Pick<ServableDescriptor, 'root' | 'files'> {
  const root = dirOf(configPath);
  const set = new Set(paths);
  const inRoot = paths.filter((p) => dirOf(p) === root);
  const graphs = inRoot.filter((p) => p.endsWith('.onnx'));
  const externalData = inRoot.filter((p) => p.endsWith('.onnx.data') || p.endsWith('.onnx_data'));
  const files: ServableFiles = { genaiConfig: configPath, ...tokenizerFiles(set, [root]) };
  if (graphs.length > 0) {
    files.model = graphs[0]!;
    files.graphs = graphs;
  }
  if (externalData.length > 0) files.externalData = externalData;
  return { root, files };
}

/**
 * Decides how a model can be served in the browser from its MLmodel and file list, or null
 * when it cannot: (1) transformers with `llm/v1/chat` (weights as an ONNX web export under
 * `model/`, or a Hub reference), (2) python_function whose artifacts hold an
 * onnxruntime-genai folder, (3) the onnx flavor.
 */
export function detectServable(model: MLmodel, paths: string[]): ServableDescriptor | null {
  const set = new Set(paths);
  const task = inferenceTask(model);
  const tf = model.flavors.transformers;
  if (tf && (task === 'llm/v1/chat' || (task === undefined && tf.task === 'text-generation'))) {
    const base: ServableDescriptor = { kind: 'chat', layout: 'reference', root: '', files: {} };
    if (task) base.task = task;
    if (typeof tf.source_model_name === 'string') base.sourceModelName = tf.source_model_name;
    if (typeof tf.source_model_revision === 'string')
      base.sourceModelRevision = tf.source_model_revision;
    const weightsDir = (typeof tf.model_binary === 'string' ? tf.model_binary : 'model') + '/';
    const genai = paths
      .filter((p) => p.startsWith(weightsDir) && baseOf(p) === 'genai_config.json')
      .sort((a, b) => a.length - b.length)[0];
    if (genai) return { ...base, layout: 'genai', ...genaiDescriptor(paths, genai) };
    const graphs = rankGraphs(paths.filter((p) => p.startsWith(weightsDir) && p.endsWith('.onnx')));
    if (graphs.length > 0) {
      const dirs = [weightsDir, 'components/tokenizer/'];
      const files: ServableFiles = { model: graphs[0]!, graphs, ...tokenizerFiles(set, dirs) };
      const data = paths.filter(
        (p) => p.startsWith(weightsDir) && (p.endsWith('.onnx_data') || p.endsWith('.onnx.data')),
      );
      if (data.length > 0) files.externalData = data;
      const config = firstIn(set, dirs, 'config.json');
      if (config) files.config = config;
      const gen = firstIn(set, dirs, 'generation_config.json');
      if (gen) files.generationConfig = gen;
      return { ...base, layout: 'web', root: weightsDir, files };
    }
    return base.sourceModelName ? base : null;
  }
  const pyfunc = model.flavors.python_function;
  if (pyfunc) {
    for (const [name, artPath] of Object.entries(pyfuncArtifacts(model))) {
      const prefix = artPath.replace(/\/$/, '') + '/';
      const config = paths
        .filter((p) => (p.startsWith(prefix) || p === artPath) && baseOf(p) === 'genai_config.json')
        .sort((a, b) => a.length - b.length)[0];
      if (!config) continue;
      const chat = (model.signature?.inputs as { name?: string }[] | null | undefined)?.some(
        (s) => s.name === 'messages',
      );
      const d: ServableDescriptor = {
        kind: chat ? 'chat' : 'prompt',
        layout: 'genai',
        artifactName: name,
        ...genaiDescriptor(paths, config),
      };
      if (task) d.task = task;
      return d;
    }
  }
  const onnx = model.flavors.onnx;
  if (onnx && typeof onnx.data === 'string') {
    const root = dirOf(onnx.data);
    const skip =
      /^(MLmodel|conda\.yaml|python_env\.yaml|requirements\.txt|constraints\.txt|input_example\.json|serving_input_example\.json|registered_model_meta|environment_variables\.txt)$/;
    const sidecars = paths.filter(
      (p) => p !== onnx.data && dirOf(p) === root && !skip.test(baseOf(p)) && !p.endsWith('.md'),
    );
    const files: ServableFiles = { model: onnx.data, graphs: [onnx.data] };
    if (sidecars.length > 0) files.externalData = sidecars;
    return { kind: 'onnx', layout: 'onnx', root, files };
  }
  return null;
}
