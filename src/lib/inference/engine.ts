import type { ByteProgress, ModelFiles } from './engines/files.ts';
import {
  generate,
  type CausalLM,
  type GenerateOptions,
  type GenerationResult,
} from './generate.ts';
import type { GenerateInput, GenerationParams, ModelLayout } from './protocol.ts';
import { InferenceError } from './protocol.ts';
import { TextTokenizer } from './tokenizer.ts';

/** A loaded model, ready to generate. */
export interface Engine {
  readonly lm: CausalLM;
  readonly tokenizer: TextTokenizer;
  readonly eosIds: ReadonlySet<number>;
  readonly layout: ModelLayout;
  /** The weight variant actually loaded. */
  readonly dtype: string;
  /** The model's own generation defaults (genai `search`, generation_config.json). */
  readonly defaults: GenerationParams;
  dispose(): Promise<void>;
}

export type LoadProgress = (
  phase: 'fetch' | 'session',
  file: string,
  loaded: number,
  total: number,
) => void;

/** Phi-3 ends a turn with `<|end|>` and a text with `<|endoftext|>`, whatever the config lists. */
const END_TOKENS = ['<|end|>', '<|endoftext|>'];

export function collectEosIds(tokenizer: TextTokenizer, ...lists: unknown[]): Set<number> {
  const ids = new Set<number>();
  for (const v of lists) {
    for (const id of Array.isArray(v) ? v : [v]) if (Number.isInteger(id)) ids.add(id as number);
  }
  for (const t of END_TOKENS) {
    const id = tokenizer.tokenId(t);
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

export async function loadTokenizer(files: ModelFiles): Promise<TextTokenizer> {
  if (!(await files.has('tokenizer.json'))) {
    throw new InferenceError('load-failed', `${files.name}: tokenizer.json is missing`);
  }
  const json = await files.text('tokenizer.json');
  const config = (await files.has('tokenizer_config.json'))
    ? await files.text('tokenizer_config.json')
    : null;
  // A genai folder is read the way onnxruntime-genai reads it (ids and text), any other the
  // way transformers does.
  const runtime = (await files.has('genai_config.json')) ? 'onnxruntime-genai' : 'transformers';
  try {
    return TextTokenizer.fromFiles(json, config, { runtime });
  } catch (e) {
    throw new InferenceError('load-failed', `${files.name}: ${(e as Error).message}`, { cause: e });
  }
}

export function progressFor(file: string, report?: LoadProgress): ByteProgress | undefined {
  return report ? (loaded, total) => report('fetch', file, loaded, total) : undefined;
}

/** Turns a chat or a raw prompt into token ids. */
export function promptIds(engine: Engine, input: GenerateInput): number[] {
  if (input.kind === 'chat') return engine.tokenizer.encodeChat(input.messages);
  // As the runtime's tokenizer.encode: the prompt as is, with that runtime's special-token rule
  // (onnxruntime-genai adds none; transformers follows add_bos_token or the post-processor).
  return engine.tokenizer.encode(input.prompt, { addSpecialTokens: true });
}

export type RunHooks = Pick<GenerateOptions, 'onToken' | 'shouldStop' | 'yieldControl' | 'now'> & {
  onStart?: (promptTokens: number) => void;
};

/** Tokenizes the input and runs the generation loop on the engine. */
export async function runGeneration(
  engine: Engine,
  input: GenerateInput,
  params: GenerationParams,
  hooks: RunHooks = {},
): Promise<GenerationResult> {
  const ids = promptIds(engine, input);
  hooks.onStart?.(ids.length);
  return generate(engine.lm, {
    tokenizer: engine.tokenizer,
    promptIds: ids,
    params,
    eosIds: engine.eosIds,
    trimStart: input.kind === 'chat',
    ...hooks,
  });
}
