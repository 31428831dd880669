import type { ChoiceResult, FinishReason, GenerationParams, Timings, Usage } from './protocol.ts';
import { InferenceError } from './protocol.ts';
import { randomSeed, sampleToken, seededRandom, type SamplingParams } from './sampling.ts';
import { StopMatcher } from './stopping.ts';
import { StreamingDecoder, type TextTokenizer } from './tokenizer.ts';

/** A decoder-only model with a KV cache, as the generation loop sees it. */
export interface CausalLM {
  /** Longest sequence (prompt + generated) the model accepts. */
  readonly contextLength: number;
  /** Runs `ids` after what the cache already holds; returns the logits of the last position. */
  forward(ids: number[]): Promise<Float32Array>;
  /** Drops the cache: the next forward() starts a new sequence. */
  reset(): Promise<void>;
  dispose(): Promise<void>;
}

export interface TokenEvent {
  index: number;
  text: string;
  tokenIds: number[];
  tokenCount: number;
  tokensPerSecond: number;
}

export interface GenerateOptions {
  tokenizer: TextTokenizer;
  promptIds: number[];
  params: GenerationParams;
  /** Generation ends when one of these is sampled (it is counted, never shown). */
  eosIds: ReadonlySet<number>;
  /** Drop the answer's leading whitespace (a chat message); a raw prompt's continuation keeps it. */
  trimStart?: boolean;
  /** Used when neither max_tokens nor max_length is given. */
  defaultMaxTokens?: number;
  onToken?: (event: TokenEvent) => void;
  /** Checked before every forward pass; true ends generation at once (interrupt). */
  shouldStop?: () => boolean;
  /** Awaited after every token so that messages (an interrupt) can be handled. */
  yieldControl?: () => Promise<void>;
  now?: () => number;
}

export interface GenerationResult {
  choices: ChoiceResult[];
  usage: Usage;
  timings: Timings;
  interrupted: boolean;
}

export const DEFAULT_MAX_TOKENS = 256;

/** Turns protocol parameters into sampler settings, rejecting values that make no sense. */
export function samplingParams(p: GenerationParams): SamplingParams {
  const temperature = p.temperature ?? 0;
  const topP = p.top_p ?? 1;
  const topK = p.top_k ?? 0;
  const repetitionPenalty = p.repetition_penalty ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new InferenceError('bad-request', `temperature must be a number ≥ 0, got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new InferenceError('bad-request', `top_p must be in (0, 1], got ${topP}`);
  }
  if (!(Number.isInteger(topK) && topK >= 0)) {
    throw new InferenceError('bad-request', `top_k must be an integer ≥ 0, got ${topK}`);
  }
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) {
    throw new InferenceError(
      'bad-request',
      `repetition_penalty must be a number > 0, got ${repetitionPenalty}`,
    );
  }
  return { temperature, topP, topK, repetitionPenalty };
}

/** How many new tokens a choice may have. */
export function maxNewTokens(
  params: GenerationParams,
  promptTokens: number,
  contextLength: number,
  defaultMaxTokens = DEFAULT_MAX_TOKENS,
): number {
  for (const key of ['max_tokens', 'max_length'] as const) {
    const v = params[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
      throw new InferenceError('bad-request', `${key} must be an integer ≥ 0, got ${v}`);
    }
  }
  let limit = contextLength - promptTokens;
  if (params.max_tokens !== undefined) limit = Math.min(limit, params.max_tokens);
  if (params.max_length !== undefined) limit = Math.min(limit, params.max_length - promptTokens);
  if (params.max_tokens === undefined && params.max_length === undefined) {
    limit = Math.min(limit, defaultMaxTokens);
  }
  return Math.max(0, limit);
}

/**
 * The generation loop shared by every engine: prefill, then one token at a time with the KV
 * cache, sampling, stop ids, stop strings and length limits; `n` choices one after another
 * from one seeded generator, so a seed reproduces every choice.
 */
export async function generate(lm: CausalLM, o: GenerateOptions): Promise<GenerationResult> {
  const now = o.now ?? (() => performance.now());
  const started = now();
  const { promptIds, tokenizer } = o;
  if (promptIds.length === 0) {
    throw new InferenceError('bad-request', 'The prompt is empty after tokenization');
  }
  if (promptIds.length >= lm.contextLength) {
    throw new InferenceError(
      'bad-request',
      `The prompt is ${promptIds.length} tokens; this model's context holds ${lm.contextLength}`,
    );
  }
  const n = o.params.n ?? 1;
  if (!(Number.isInteger(n) && n >= 1 && n <= 16)) {
    throw new InferenceError('bad-request', `n must be an integer from 1 to 16, got ${n}`);
  }
  const stops = o.params.stop ?? [];
  if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string')) {
    throw new InferenceError('bad-request', 'stop must be a list of strings');
  }
  const sampling = samplingParams(o.params);
  const limit = maxNewTokens(o.params, promptIds.length, lm.contextLength, o.defaultMaxTokens);
  const random = seededRandom(o.params.seed ?? randomSeed());

  const choices: ChoiceResult[] = [];
  let ttftMs = -1;
  let completionTokens = 0;
  let decodeMs = 0;
  let decodeTokens = 0;
  let interrupted = false;

  for (let index = 0; index < n && !interrupted; index++) {
    const decoder = new StreamingDecoder(tokenizer, { promptIds, trimStart: o.trimStart });
    const matcher = new StopMatcher(stops);
    const generated: number[] = [];
    const context = [...promptIds];
    let finishReason: FinishReason = 'length';
    let firstTokenAt = 0;

    const emit = (text: string, tokenIds: number[]) => {
      const elapsed = now() - firstTokenAt;
      const tps =
        generated.length > 1 && elapsed > 0 ? ((generated.length - 1) * 1000) / elapsed : 0;
      o.onToken?.({ index, text, tokenIds, tokenCount: generated.length, tokensPerSecond: tps });
    };

    if (limit > 0) {
      await lm.reset();
      if (o.shouldStop?.()) {
        interrupted = true;
      } else {
        let logits = await lm.forward(promptIds);
        for (;;) {
          const id = sampleToken(logits, sampling, random, context);
          generated.push(id);
          context.push(id);
          if (generated.length === 1) {
            firstTokenAt = now();
            if (ttftMs < 0) ttftMs = firstTokenAt - started;
          }
          if (o.eosIds.has(id)) {
            finishReason = 'stop';
            emit('', [id]);
            break;
          }
          const { emit: text, stop } = matcher.push(decoder.push(id));
          emit(text, [id]);
          if (stop) {
            finishReason = 'stop';
            break;
          }
          if (generated.length >= limit) break;
          await o.yieldControl?.();
          if (o.shouldStop?.()) {
            interrupted = true;
            finishReason = 'stop';
            break;
          }
          logits = await lm.forward([id]);
        }
        if (generated.length > 1) {
          decodeMs += now() - firstTokenAt;
          decodeTokens += generated.length - 1;
        }
      }
    }
    if (!matcher.hasStopped) {
      const tail = matcher.push(decoder.flush());
      const rest = tail.emit + (tail.stop ? '' : matcher.flush());
      if (tail.stop) finishReason = 'stop';
      if (rest) emit(rest, []);
    }
    completionTokens += generated.length;
    choices.push({ index, text: matcher.fullText, finishReason, tokenIds: generated });
  }

  const totalMs = now() - started;
  return {
    choices,
    usage: {
      prompt_tokens: promptIds.length,
      completion_tokens: completionTokens,
      total_tokens: promptIds.length + completionTokens,
    },
    timings: {
      ttftMs: Math.max(0, ttftMs),
      tokensPerSecond: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
      totalMs,
    },
    interrupted,
  };
}

/** Resolves after pending messages had a chance to run (a macrotask, not a microtask). */
export function nextMacrotask(): Promise<void> {
  // setTimeout is clamped to 4 ms once nested in browsers; a message round trip is not.
  if (typeof MessageChannel === 'undefined' || 'process' in globalThis) {
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}
