// The two signatures the seed's models are served behind:
// - `llm/v1/chat` (mlflow.transformers with task llm/v1/chat): OpenAI-style chat.completion;
// - `{prompt: string} -> string` (the custom pyfunc wrapper around onnxruntime-genai).
import type { GenerationHandle, TextGenerator } from './handle.ts';
import type {
  ChatMessage,
  CompleteMessage,
  FinishReason,
  GenerationParams,
  Usage,
} from './protocol.ts';
import { InferenceError } from './protocol.ts';

export interface ChatRequest {
  messages: ChatMessage[];
  params: GenerationParams;
  stream: boolean;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string };
    finish_reason: FinishReason;
  }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string };
    finish_reason: FinishReason | null;
  }[];
  /** Present on the last chunk only. */
  usage?: Usage;
}

export interface ResponseMeta {
  model: string;
  /** Seconds since the epoch; defaults to now. */
  created?: number;
  id?: string;
}

/** Used when a chat request gives no max_tokens. */
export const CHAT_DEFAULT_MAX_TOKENS = 256;

const ROLES = new Set(['system', 'user', 'assistant']);
const CHAT_KEYS = new Set([
  'messages',
  'temperature',
  'max_tokens',
  'stop',
  'n',
  'stream',
  'top_p',
  'top_k',
  'seed',
  'repetition_penalty',
]);

function fail(message: string): never {
  throw new InferenceError('bad-request', `llm/v1/chat: ${message}`);
}

function optNumber(o: Record<string, unknown>, key: string, integer = false): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    fail(`"${key}" must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Validates a request against the llm/v1/chat signature; errors name the field. */
export function parseChatRequest(input: unknown): ChatRequest {
  if (!input || typeof input !== 'object' || Array.isArray(input))
    fail('expected an object with "messages"');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!CHAT_KEYS.has(k)) fail(`unknown field "${k}"`);
  if (!Array.isArray(o.messages) || o.messages.length === 0)
    fail('"messages" must be a non-empty list');
  const messages = o.messages.map((m: unknown, i: number): ChatMessage => {
    if (!m || typeof m !== 'object') fail(`messages[${i}] must be an object`);
    const { role, content, name } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      fail(
        `messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`,
      );
    }
    if (typeof content !== 'string') fail(`messages[${i}].content must be a string`);
    if (name !== undefined && name !== null && typeof name !== 'string') {
      fail(`messages[${i}].name must be a string`);
    }
    return { role: role as ChatMessage['role'], content };
  });
  let stop: string[] | undefined;
  if (typeof o.stop === 'string') stop = [o.stop];
  else if (Array.isArray(o.stop) && o.stop.every((s) => typeof s === 'string'))
    stop = o.stop as string[];
  else if (o.stop !== undefined && o.stop !== null)
    fail('"stop" must be a string or a list of strings');
  if (o.stream !== undefined && o.stream !== null && typeof o.stream !== 'boolean')
    fail('"stream" must be a boolean');
  const params: GenerationParams = {
    temperature: optNumber(o, 'temperature'),
    max_tokens: optNumber(o, 'max_tokens', true) ?? CHAT_DEFAULT_MAX_TOKENS,
    top_p: optNumber(o, 'top_p'),
    top_k: optNumber(o, 'top_k', true),
    seed: optNumber(o, 'seed', true),
    n: optNumber(o, 'n', true),
    repetition_penalty: optNumber(o, 'repetition_penalty'),
    stop,
  };
  return { messages, params, stream: o.stream === true };
}

function completionId(): string {
  const hex =
    typeof crypto !== 'undefined' && 'randomUUID' in crypto
      ? crypto.randomUUID().replace(/-/g, '')
      : Math.random().toString(16).slice(2).padEnd(24, '0');
  return `chatcmpl-${hex.slice(0, 24)}`;
}

export function toChatCompletion(done: CompleteMessage, meta: ResponseMeta): ChatCompletion {
  return {
    id: meta.id ?? completionId(),
    object: 'chat.completion',
    created: meta.created ?? Math.floor(Date.now() / 1000),
    model: meta.model,
    choices: done.choices.map((c) => ({
      index: c.index,
      message: { role: 'assistant', content: c.text },
      finish_reason: c.finishReason,
    })),
    usage: { ...done.usage },
  };
}

/** Answers one llm/v1/chat request (non-streaming). */
export async function chatCompletion(
  generator: TextGenerator,
  request: unknown,
  meta: ResponseMeta,
): Promise<ChatCompletion> {
  const { messages, params } = parseChatRequest(request);
  const done = await generator.generate({ kind: 'chat', messages }, params).result;
  return toChatCompletion(done, meta);
}

/**
 * The streaming variant: a role chunk per choice, content chunks as text arrives, then one chunk
 * per choice with its finish_reason (the last one also carries usage).
 */
export async function* chatCompletionChunks(
  generator: TextGenerator,
  request: unknown,
  meta: ResponseMeta,
  onHandle?: (h: GenerationHandle) => void,
): AsyncGenerator<ChatCompletionChunk> {
  const { messages, params } = parseChatRequest(request);
  const handle = generator.generate({ kind: 'chat', messages }, params);
  onHandle?.(handle);
  const base = {
    id: meta.id ?? completionId(),
    object: 'chat.completion.chunk' as const,
    created: meta.created ?? Math.floor(Date.now() / 1000),
    model: meta.model,
  };
  const opened = new Set<number>();
  const open = (index: number): ChatCompletionChunk | null => {
    if (opened.has(index)) return null;
    opened.add(index);
    return {
      ...base,
      choices: [{ index, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    };
  };
  for await (const u of handle) {
    const first = open(u.index);
    if (first) yield first;
    if (u.text)
      yield {
        ...base,
        choices: [{ index: u.index, delta: { content: u.text }, finish_reason: null }],
      };
  }
  const done = await handle.result;
  for (const [i, c] of done.choices.entries()) {
    const first = open(c.index);
    if (first) yield first;
    const last = i === done.choices.length - 1;
    yield {
      ...base,
      choices: [{ index: c.index, delta: {}, finish_reason: c.finishReason }],
      ...(last ? { usage: { ...done.usage } } : {}),
    };
  }
}

/** MLflow pyfunc predict for a chat model: one response per request, in a list. */
export async function predictChat(
  generator: TextGenerator,
  input: unknown,
  meta: ResponseMeta,
): Promise<ChatCompletion[]> {
  const requests = Array.isArray(input) ? input : [input];
  const out: ChatCompletion[] = [];
  for (const r of requests) out.push(await chatCompletion(generator, r, meta));
  return out;
}

/** The seed wrapper's search options: max_length 300 (prompt included), greedy. */
export const PROMPT_WRAPPER_DEFAULTS: GenerationParams = { max_length: 300, temperature: 0 };

/**
 * The `prompt` column of a pyfunc input, in the shapes MLflow accepts: `{prompt: "..."}`,
 * `{prompt: [...]}`, records `[{prompt}]`, `{dataframe_records}`, `{dataframe_split}`, `{inputs}`.
 */
export function promptColumn(input: unknown): string[] {
  const bad = (why: string): never => {
    throw new InferenceError('bad-request', `prompt signature: ${why}`);
  };
  const strings = (v: unknown, where: string): string[] => {
    const list = Array.isArray(v) ? v : [v];
    if (list.length === 0) bad(`"${where}" is empty`);
    return list.map((s, i) => (typeof s === 'string' ? s : bad(`${where}[${i}] must be a string`)));
  };
  if (Array.isArray(input)) {
    return input.map((r, i) =>
      r && typeof r === 'object' && typeof (r as Record<string, unknown>).prompt === 'string'
        ? ((r as Record<string, unknown>).prompt as string)
        : bad(`record ${i} needs a string "prompt"`),
    );
  }
  if (!input || typeof input !== 'object') bad('expected an object with a "prompt" column');
  const o = input as Record<string, unknown>;
  if ('prompt' in o) return strings(o.prompt, 'prompt');
  if ('dataframe_records' in o) return promptColumn(o.dataframe_records);
  if ('inputs' in o) return promptColumn(o.inputs);
  if ('dataframe_split' in o) {
    const split = o.dataframe_split as { columns?: unknown; data?: unknown } | null;
    const col = Array.isArray(split?.columns) ? split.columns.indexOf('prompt') : -1;
    if (col < 0 || !Array.isArray(split?.data)) bad('dataframe_split needs a "prompt" column');
    return (split!.data as unknown[][]).map((row, i) =>
      typeof row?.[col] === 'string'
        ? (row[col] as string)
        : bad(`dataframe_split.data[${i}] has no prompt string`),
    );
  }
  return bad('missing required column "prompt"');
}

/**
 * `{prompt} -> string`, as the seed's wrapper: the first prompt, used as is (the caller writes the
 * chat markup), greedy with max_length 300 unless overridden; the answer is the new text only,
 * decoded as the model's runtime decodes it (for a genai folder, onnxruntime-genai's
 * `tokenizer.decode(new_tokens)`: the first new token keeps its leading space).
 */
export async function predictPrompt(
  generator: TextGenerator,
  input: unknown,
  overrides: GenerationParams = {},
): Promise<string> {
  const prompt = promptColumn(input)[0]!;
  const params = { ...PROMPT_WRAPPER_DEFAULTS, ...overrides, n: 1 };
  const done = await generator.generate({ kind: 'prompt', prompt }, params).result;
  return done.text;
}
