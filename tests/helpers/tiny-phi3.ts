// The tiny random-weight Phi-3 fixture for tests: generated on first use into the git-ignored
// fixtures/generated/tiny-phi3/, and regenerated whenever the generator's source changes.
// Also a reference greedy loop on onnxruntime-node that engines can be compared against.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as OrtNode from 'onnxruntime-node';
import {
  DEFAULT_GENAI_FILENAME,
  generatePhi3,
  type GenerateOptions,
} from '../../scripts/make-tiny-phi3.ts';

export { DEFAULT_GENAI_FILENAME as TINY_GENAI_FILENAME };

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TARGET = join(ROOT, 'fixtures', 'generated', 'tiny-phi3');
const STAMP = '.source-hash';

/** Shape of the tiny preset, for tests that build inputs by hand. */
export const TINY = {
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headSize: 16,
  hiddenSize: 64,
  vocabSize: 32064,
  contextLength: 512,
  eosTokenIds: [32000, 32001, 32007],
} as const;

function sourceHash(): string {
  const h = createHash('sha256');
  const files = [join(ROOT, 'scripts', 'make-tiny-phi3.ts')];
  for (const sub of ['onnx', 'tokenizer']) {
    const dir = join(ROOT, 'scripts', sub);
    for (const f of readdirSync(dir).sort()) files.push(join(dir, f));
  }
  for (const f of files) {
    h.update(f.slice(ROOT.length));
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

function stampOf(dir: string): string | null {
  try {
    return readFileSync(join(dir, STAMP), 'utf8');
  } catch {
    return null;
  }
}

let cached: Promise<TinyPhi3Paths> | null = null;

/**
 * Generates into `target` (via a private folder renamed into place) unless its stamp matches the
 * generator's source; safe from parallel test workers.
 */
function ensureGenerated(target: string, generate: (dir: string) => void): void {
  const hash = sourceHash();
  if (stampOf(target) === hash) return;
  const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  generate(tmp);
  writeFileSync(join(tmp, STAMP), hash);
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(tmp, target);
      return;
    } catch (err) {
      if (stampOf(target) === hash) {
        rmSync(tmp, { recursive: true, force: true });
        return;
      }
      if (attempt >= 5) throw err;
      if (existsSync(target)) {
        const old = `${target}.old-${process.pid}-${attempt}`;
        try {
          renameSync(target, old);
          rmSync(old, { recursive: true, force: true });
        } catch {
          // another worker moved it first; try again
        }
      }
    }
  }
}

/** Shape of the MultiHeadAttention variant: the tiny preset with one KV head per head. */
export const TINY_MHA = { ...TINY, numKvHeads: 4 } as const;

export interface TinyPhi3MhaPaths {
  /**
   * Web layout in the builder's MultiHeadAttention form (position_ids input, separate Q/K/V,
   * RotaryEmbedding, MultiHeadAttention), onnx/model_q4{,f16}.onnx.
   */
  web: string;
  /** The same shape, seed and weights in the GroupQueryAttention web form, for comparison. */
  webGqa: string;
}

let cachedMha: Promise<TinyPhi3MhaPaths> | null = null;

/**
 * The MultiHeadAttention + RotaryEmbedding + position_ids variant of the tiny web layout, in
 * fixtures/generated/tiny-phi3-mha/ (generated on first use, like ensureTinyPhi3).
 */
export function ensureTinyPhi3Mha(): Promise<TinyPhi3MhaPaths> {
  cachedMha ??= Promise.resolve().then(() => {
    const target = `${TARGET}-mha`;
    ensureGenerated(target, (dir) => {
      const common: GenerateOptions = {
        outDir: dir,
        preset: 'tiny',
        layouts: ['web'],
        numKvHeads: TINY_MHA.numKvHeads,
      };
      generatePhi3({ ...common, webAttention: 'mha', webDir: 'web' });
      generatePhi3({ ...common, webAttention: 'gqa', webDir: 'web-gqa' });
    });
    return { web: join(target, 'web'), webGqa: join(target, 'web-gqa') };
  });
  return cachedMha;
}

export interface TinyPhi3Paths {
  /** transformers.js layout: config.json, tokenizer files, onnx/model_q4{,f16}.onnx(+_data). */
  web: string;
  /** onnxruntime-genai layout: genai_config.json, the .onnx + .onnx.data, tokenizer files. */
  genai: string;
  /** Absolute path of the genai .onnx file (genai_config.json's decoder.filename). */
  genaiModel: string;
}

/**
 * Returns the fixture folders, generating them (about a second) if missing or stale. Safe to call
 * from parallel test workers: each generates into its own folder and renames it into place.
 */
export function ensureTinyPhi3(): Promise<TinyPhi3Paths> {
  cached ??= Promise.resolve().then(() => {
    const hash = sourceHash();
    const paths = {
      web: join(TARGET, 'web'),
      genai: join(TARGET, 'genai'),
      genaiModel: join(TARGET, 'genai', DEFAULT_GENAI_FILENAME),
    };
    if (stampOf(TARGET) === hash) return paths;
    const tmp = `${TARGET}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    generatePhi3({ outDir: tmp, preset: 'tiny' });
    writeFileSync(join(tmp, STAMP), hash);
    for (let attempt = 0; ; attempt++) {
      try {
        renameSync(tmp, TARGET);
        return paths;
      } catch (err) {
        if (stampOf(TARGET) === hash) {
          rmSync(tmp, { recursive: true, force: true });
          return paths;
        }
        if (attempt >= 5) throw err;
        if (existsSync(TARGET)) {
          const old = `${TARGET}.old-${process.pid}-${attempt}`;
          try {
            renameSync(TARGET, old);
            rmSync(old, { recursive: true, force: true });
          } catch {
            // another worker moved it first; try again
          }
        }
      }
    }
  });
  return cached;
}

export interface GreedyResult {
  /** Generated ids, prompt excluded. */
  ids: number[];
  /** Logits of the last position at each step (step 0 = after the prompt), as float32. */
  logits: Float32Array[];
}

/** fp16 bits to number (Node has no Float16Array; ORT returns q4f16 tensors as Uint16Array). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function lastRowLogits(t: OrtNode.Tensor, row = -1): Float32Array {
  const [, seq, vocab] = t.dims as [number, number, number];
  const r = row < 0 ? seq + row : row;
  const data = t.data as Float32Array | Uint16Array;
  const slice = data.subarray(r * vocab, (r + 1) * vocab);
  return slice instanceof Float32Array ? slice.slice() : Float32Array.from(slice, halfToFloat);
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/**
 * The parts of an onnxruntime flavour the loop needs: onnxruntime-node and onnxruntime-web
 * ship different onnxruntime-common copies, so both are accepted structurally.
 */
export interface OrtLike {
  Tensor: new (
    type: 'int64' | 'float32' | 'float16',
    data: BigInt64Array | Float32Array | Uint16Array,
    dims: number[],
  ) => unknown;
}
export interface SessionLike {
  inputMetadata: readonly ({ name: string; isTensor: boolean } & { type?: string })[];
  run(feeds: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/**
 * Greedy decoding on one onnxruntime session of the fixture (either layout, onnxruntime-node or
 * onnxruntime-web): prefill the prompt, then one token per step with the KV cache fed back.
 * Stops after `steps` tokens or, with stopOnEos, on an eos id. With `force`, step i feeds
 * force[i] instead of the argmax (teacher forcing), so two engines can be compared step by step
 * on identical inputs even where their greedy choices would part.
 */
export async function greedyOrtNode(
  ort: OrtLike | typeof OrtNode,
  session: SessionLike | OrtNode.InferenceSession,
  promptIds: number[],
  steps: number,
  opts: {
    stopOnEos?: boolean;
    force?: number[];
    /** KV cache shape when it is not the tiny preset's (e.g. TINY_MHA). */
    shape?: { numLayers: number; numKvHeads: number; headSize: number };
  } = {},
): Promise<GreedyResult> {
  const Tensor = ort.Tensor as OrtLike['Tensor'];
  const s = session as SessionLike;
  const shape = opts.shape ?? TINY;
  // Graphs with RotaryEmbedding outside attention take the positions of the new tokens.
  const withPositions = s.inputMetadata.some((m) => m.name === 'position_ids');
  const f16 = s.inputMetadata.some(
    (m) => m.isTensor && m.name.startsWith('past_key_values') && m.type === 'float16',
  );
  let past: Record<string, unknown> = {};
  for (let l = 0; l < shape.numLayers; l++)
    for (const kv of ['key', 'value'])
      past[`past_key_values.${l}.${kv}`] = new Tensor(
        f16 ? 'float16' : 'float32',
        f16 ? new Uint16Array(0) : new Float32Array(0),
        [1, shape.numKvHeads, 0, shape.headSize],
      );
  const result: GreedyResult = { ids: [], logits: [] };
  let input = promptIds;
  let total = 0;
  for (let step = 0; step < steps; step++) {
    const start = total;
    total += input.length;
    const positions = withPositions
      ? {
          position_ids: new Tensor(
            'int64',
            BigInt64Array.from(input, (_, i) => BigInt(start + i)),
            [1, input.length],
          ),
        }
      : {};
    const out = await s.run({
      input_ids: new Tensor('int64', BigInt64Array.from(input, BigInt), [1, input.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      ...positions,
      ...past,
    });
    const logits = lastRowLogits(out.logits as OrtNode.Tensor);
    const next = opts.force?.[step] ?? argmax(logits);
    result.logits.push(logits);
    result.ids.push(next);
    if (opts.stopOnEos && (TINY.eosTokenIds as readonly number[]).includes(next)) break;
    past = {};
    for (let l = 0; l < shape.numLayers; l++)
      for (const kv of ['key', 'value'])
        past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    input = [next];
  }
  return result;
}
