import { collectEosIds, loadTokenizer, type Engine, type LoadProgress } from '../engine.ts';
import type { GenerationParams } from '../protocol.ts';
import { InferenceError } from '../protocol.ts';
import type { ModelFiles } from './files.ts';
import {
  OrtCausalLM,
  WEBGPU_MAX_TOKENS_PER_RUN,
  type KvLayout,
  type OrtRuntime,
} from './ort-causal-lm.ts';

/** What the generation loop needs from an onnxruntime-genai `genai_config.json`. */
export interface GenaiConfig {
  type: string;
  graph: string;
  layout: KvLayout;
  vocabSize: number;
  eosTokenIds: number[];
  search: GenerationParams;
}

type Obj = Record<string, unknown>;

function at(obj: Obj, path: string): unknown {
  let v: unknown = obj;
  for (const k of path.split('.')) v = v && typeof v === 'object' ? (v as Obj)[k] : undefined;
  return v;
}

function need<T>(obj: Obj, path: string, kind: 'string' | 'integer', fallback?: T): T {
  const v = at(obj, path);
  if (v === undefined && fallback !== undefined) return fallback;
  const ok =
    kind === 'string'
      ? typeof v === 'string' && v.length > 0
      : Number.isInteger(v) && (v as number) > 0;
  if (!ok) {
    throw new InferenceError(
      'load-failed',
      `genai_config.json: "${path}" must be ${kind === 'string' ? 'a non-empty string' : 'a positive integer'}, got ${JSON.stringify(v)}`,
    );
  }
  return v as T;
}

/** Parses genai_config.json; errors name the key and what was expected. */
export function parseGenaiConfig(config: Obj): GenaiConfig {
  if (!at(config, 'model.decoder') || typeof at(config, 'model.decoder') !== 'object') {
    throw new InferenceError('load-failed', 'genai_config.json: "model.decoder" is missing');
  }
  const layers = need<number>(config, 'model.decoder.num_hidden_layers', 'integer');
  const heads = need<number>(config, 'model.decoder.num_attention_heads', 'integer');
  const kvHeads = need<number>(config, 'model.decoder.num_key_value_heads', 'integer', heads);
  const hidden = need<number>(config, 'model.decoder.hidden_size', 'integer');
  const headSize = need<number>(config, 'model.decoder.head_size', 'integer', hidden / heads);
  const names = (key: string, fallback: string) => {
    const pattern = need<string>(config, key, 'string', fallback);
    if (!pattern.includes('%d')) {
      throw new InferenceError(
        'load-failed',
        `genai_config.json: "${key}" must contain %d, got "${pattern}"`,
      );
    }
    return Array.from({ length: layers }, (_, i) => pattern.replace('%d', String(i)));
  };
  const search = (at(config, 'search') ?? {}) as Obj;
  const num = (k: string) => (typeof search[k] === 'number' ? (search[k] as number) : undefined);
  const eos = at(config, 'model.eos_token_id');
  const defaults: GenerationParams = {};
  // onnxruntime-genai ignores temperature/top-k/top-p unless do_sample is set.
  defaults.temperature = search.do_sample === true ? (num('temperature') ?? 1) : 0;
  if (search.do_sample === true) {
    if (num('top_k') !== undefined) defaults.top_k = num('top_k');
    if (num('top_p') !== undefined) defaults.top_p = num('top_p');
  }
  if (num('max_length') !== undefined) defaults.max_length = num('max_length');
  if (num('repetition_penalty') !== undefined)
    defaults.repetition_penalty = num('repetition_penalty');
  return {
    type:
      typeof at(config, 'model.type') === 'string'
        ? (at(config, 'model.type') as string)
        : 'unknown',
    graph: need<string>(config, 'model.decoder.filename', 'string'),
    vocabSize: need<number>(config, 'model.vocab_size', 'integer'),
    eosTokenIds: (Array.isArray(eos) ? eos : [eos]).filter((x): x is number => Number.isInteger(x)),
    search: defaults,
    layout: {
      inputIds: need(config, 'model.decoder.inputs.input_ids', 'string', 'input_ids'),
      attentionMask: need(
        config,
        'model.decoder.inputs.attention_mask',
        'string',
        'attention_mask',
      ),
      positionIds: need(config, 'model.decoder.inputs.position_ids', 'string', 'position_ids'),
      logits: need(config, 'model.decoder.outputs.logits', 'string', 'logits'),
      pastKeys: names('model.decoder.inputs.past_key_names', 'past_key_values.%d.key'),
      pastValues: names('model.decoder.inputs.past_value_names', 'past_key_values.%d.value'),
      presentKeys: names('model.decoder.outputs.present_key_names', 'present.%d.key'),
      presentValues: names('model.decoder.outputs.present_value_names', 'present.%d.value'),
      numKvHeads: kvHeads,
      headSize,
      contextLength: need<number>(config, 'model.context_length', 'integer'),
    },
  };
}

/** External data next to a graph, under the names the exporters use. */
export async function externalDataFiles(files: ModelFiles, graph: string): Promise<string[]> {
  const found: string[] = [];
  for (const candidate of [`${graph}.data`, `${graph}_data`]) {
    if (await files.has(candidate)) found.push(candidate);
  }
  return found;
}

/**
 * The onnxruntime-genai layout served by onnxruntime directly with the project's own
 * generation loop (the seed's custom Python wrapper ran the same folder with onnxruntime-genai).
 */
export async function loadGenaiEngine(
  files: ModelFiles,
  runtime: OrtRuntime,
  onProgress?: LoadProgress,
): Promise<Engine> {
  if (!(await files.has('genai_config.json'))) {
    throw new InferenceError(
      'load-failed',
      `${files.name}: genai_config.json is missing (not an onnxruntime-genai folder)`,
    );
  }
  const config = parseGenaiConfig(JSON.parse(await files.text('genai_config.json')) as Obj);
  if (!(await files.has(config.graph))) {
    throw new InferenceError(
      'load-failed',
      `${files.name}: the graph ${config.graph} named in genai_config.json is missing`,
    );
  }
  const tokenizer = await loadTokenizer(files);
  const session = await runtime.createSession({
    graph: config.graph,
    externalData: await externalDataFiles(files, config.graph),
    gpuOutputs:
      runtime.backend === 'webgpu'
        ? [...config.layout.presentKeys, ...config.layout.presentValues]
        : [],
    onProgress: onProgress && ((file, loaded, total) => onProgress('fetch', file, loaded, total)),
  });
  let lm: OrtCausalLM;
  try {
    lm = new OrtCausalLM(
      runtime,
      session,
      config.layout,
      runtime.backend === 'webgpu' ? WEBGPU_MAX_TOKENS_PER_RUN : undefined,
    );
  } catch (e) {
    await session.release();
    throw e;
  }
  return {
    lm,
    tokenizer,
    eosIds: collectEosIds(tokenizer, config.eosTokenIds),
    layout: 'genai',
    dtype: 'int4',
    defaults: config.search,
    dispose: () => lm.dispose(),
  };
}
