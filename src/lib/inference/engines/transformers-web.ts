import { AutoModelForCausalLM, DynamicCache, Tensor, env } from '@huggingface/transformers';
import { collectEosIds, loadTokenizer, type Engine, type LoadProgress } from '../engine.ts';
import type { CausalLM } from '../generate.ts';
import type { GenerationParams } from '../protocol.ts';
import { InferenceError } from '../protocol.ts';
import { readJson, type ModelFiles } from './files.ts';
import {
  WEBGPU_MAX_TOKENS_PER_RUN,
  chunked,
  lastRowLogits,
  type OrtTensorLike,
} from './ort-causal-lm.ts';
import { errorText, isOutOfMemory } from './ort-runtime.ts';

export interface TransformersLoadOptions {
  /** `cpu` is onnxruntime-node (Node only); the browser uses `webgpu` or `wasm`. */
  device: 'webgpu' | 'wasm' | 'cpu';
  dtype: 'q4' | 'q4f16';
  onProgress?: LoadProgress;
}

type AnyModel = Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>;
type Obj = Record<string, unknown>;

// transformers.js asks its cache for `<localModelPath>/<model id>/<file>`; each load gets its own id.
const MODEL_ROOT = '/tabflow-models/';
let loads = 0;
const served = new Map<string, ModelFiles>();

function installFileCache(): void {
  env.allowLocalModels = true;
  env.allowRemoteModels = false;
  env.useBrowserCache = false;
  env.useFSCache = false;
  env.localModelPath = MODEL_ROOT;
  env.useCustomCache = true;
  // The app's own files (IndexedDB Blobs, buffers) answer transformers.js's requests: no
  // network, and no copy through the Cache API.
  env.customCache = {
    async match(request: string) {
      const key = String(request);
      for (const [id, files] of served) {
        const at = key.indexOf(`${id}/`);
        if (at < 0) continue;
        // Asked either by local path (<root>/<id>/<file>) or by Hub URL (<id>/resolve/<rev>/<file>).
        const rest = key.slice(at + id.length + 1).replace(/^resolve\/[^/]+\//, '');
        return files.response(decodeURIComponent(rest));
      }
      return undefined;
    },
    async put() {},
  };
}

/** Runs the web layout through transformers.js's model classes and the project's generation loop. */
class TransformersCausalLM implements CausalLM {
  private cache: InstanceType<typeof DynamicCache> | null = null;
  private pastLength = 0;

  constructor(
    private readonly model: AnyModel,
    readonly contextLength: number,
    /** Longer inputs are run in chunks of this many tokens (WEBGPU_MAX_TOKENS_PER_RUN). */
    private readonly maxTokensPerRun?: number,
  ) {}

  async forward(ids: number[]): Promise<Float32Array> {
    let logits: Float32Array | null = null;
    for (const piece of chunked(ids, this.maxTokensPerRun)) logits = await this.run(piece);
    return logits!;
  }

  private async run(ids: number[]): Promise<Float32Array> {
    const total = this.pastLength + ids.length;
    const out = (await this.model.forward({
      input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      past_key_values: this.cache,
    })) as Record<string, OrtTensorLike & { dispose?: () => void }>;
    const logits = lastRowLogits(out.logits!);
    const entries: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(out)) {
      if (name.startsWith('present'))
        entries[name.replace('present', 'past_key_values')] = t as unknown as Tensor;
    }
    // update() disposes the GPU buffers of the tensors it replaces.
    if (this.cache) this.cache.update(entries);
    else this.cache = new DynamicCache(entries);
    this.pastLength = total;
    return logits;
  }

  async reset(): Promise<void> {
    await this.cache?.dispose();
    this.cache = null;
    this.pastLength = 0;
  }

  async dispose(): Promise<void> {
    await this.reset();
    await this.model.dispose();
  }
}

function generationDefaults(gen: Obj): GenerationParams {
  const num = (k: string) => (typeof gen[k] === 'number' ? (gen[k] as number) : undefined);
  const d: GenerationParams = {
    temperature: gen.do_sample === true ? (num('temperature') ?? 1) : 0,
  };
  if (gen.do_sample === true && num('top_k') !== undefined) d.top_k = num('top_k');
  if (gen.do_sample === true && num('top_p') !== undefined) d.top_p = num('top_p');
  if (num('repetition_penalty') !== undefined) d.repetition_penalty = num('repetition_penalty');
  return d;
}

export async function loadTransformersEngine(
  files: ModelFiles,
  o: TransformersLoadOptions,
): Promise<Engine> {
  if (!(await files.has('config.json'))) {
    throw new InferenceError(
      'load-failed',
      `${files.name}: config.json is missing (not a transformers.js folder)`,
    );
  }
  const config = await readJson(files, 'config.json');
  const gen = (await files.has('generation_config.json'))
    ? await readJson(files, 'generation_config.json')
    : {};
  const graph = `onnx/model_${o.dtype}.onnx`;
  if (!(await files.has(graph))) {
    throw new InferenceError(
      'load-failed',
      `${files.name}: ${graph} is missing (weights for dtype ${o.dtype})`,
    );
  }
  const tokenizer = await loadTokenizer(files);

  installFileCache();
  const id = `tabflow-local-${++loads}`;
  served.set(id, files);
  let model: AnyModel;
  try {
    model = await AutoModelForCausalLM.from_pretrained(id, {
      device: o.device,
      dtype: o.dtype,
      local_files_only: true,
      progress_callback: (p: Obj) => {
        if (p.status === 'progress' && typeof p.file === 'string') {
          o.onProgress?.('fetch', p.file, Number(p.loaded ?? 0), Number(p.total ?? 0));
        }
      },
    });
  } catch (e) {
    throw new InferenceError(
      isOutOfMemory(e) ? 'oom' : 'load-failed',
      `${files.name}: transformers.js could not load ${graph} on ${o.device}: ${errorText(e)}`,
      { cause: e },
    );
  } finally {
    served.delete(id);
  }
  const contextLength = Number(config.max_position_embeddings ?? 4096);
  const lm = new TransformersCausalLM(
    model,
    contextLength,
    o.device === 'webgpu' ? WEBGPU_MAX_TOKENS_PER_RUN : undefined,
  );
  return {
    lm,
    tokenizer,
    eosIds: collectEosIds(tokenizer, gen.eos_token_id, config.eos_token_id),
    layout: 'web',
    dtype: o.dtype,
    defaults: generationDefaults(gen),
    dispose: () => lm.dispose(),
  };
}
