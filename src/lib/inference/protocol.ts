/**
 * The one message protocol between the main thread (client.ts) and the inference worker
 * (worker.ts). Every message carries the `requestId` of the request it belongs to, so a late
 * `update` from an interrupted request can never be mistaken for part of the next answer.
 */

/** Where the model's files come from. */
export type ModelSource =
  | {
      /**
       * Files handed over as Blobs (IndexedDB-backed Blobs move between threads by reference,
       * without copying their bytes) or ArrayBuffers (transferred). Keys are paths relative to the
       * model folder: `config.json`, `onnx/model_q4.onnx`, `genai_config.json`, ...
       */
      kind: 'files';
      files: Record<string, Blob | ArrayBuffer>;
    }
  | {
      /** A folder served over HTTP(S): `${baseUrl}/${path}` is fetched in the worker. */
      kind: 'url';
      baseUrl: string;
    };

/** `web`: the transformers.js layout (config.json + onnx/model_*.onnx). `genai`: onnxruntime-genai. */
export type ModelLayout = 'web' | 'genai';
/**
 * `auto`: WebGPU where an adapter exists, else the CPU. `wasm`: the CPU: the project's own decoder,
 * or onnxruntime-web wasm for graphs the decoder refuses. `cpu`: the CPU decoder only (an error
 * if it refuses the model). `ort-wasm`: stock onnxruntime-web wasm only.
 */
export type BackendPreference = 'webgpu' | 'wasm' | 'auto' | 'cpu' | 'ort-wasm';
/** Where the model runs: `wasm` covers both CPU engines (see ReadyMessage.engine). */
export type Backend = 'webgpu' | 'wasm';
/** The engine that serves a loaded model. */
export type EngineKind = 'onnxruntime-webgpu' | 'onnxruntime-wasm' | 'cpu-decoder';

/** How the CPU decoder serves a model (ReadyMessage.cpu). */
export interface CpuDecoderInfo {
  /** `relaxed`: relaxed-SIMD kernels, verified against SIMD128 at start-up; else `simd`. */
  variant: 'simd' | 'relaxed';
  /** The start-up check of relaxed SIMD: verified, mismatch, unsupported or not-tried. */
  relaxedCheck: 'verified' | 'mismatch' | 'unsupported' | 'not-tried';
  /** Tokens of context the KV cache holds; longer requests fail with `bad-request`. */
  contextLength: number;
  /** Bytes of WebAssembly memory the model occupies (weights, KV cache, buffers). */
  wasmBytes: number;
  /** Element type of the KV cache: `f16` where fp32 would not hold the context (absent from older workers). */
  kvCache?: 'f32' | 'f16';
}
/** Web layout weight variant; `auto` picks q4f16 only where the adapter has `shader-f16`. */
export type WeightDtype = 'q4' | 'q4f16' | 'auto';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface GenerationParams {
  /** 0 (or absent) means greedy decoding. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  /** New tokens per choice. */
  max_tokens?: number;
  /** Total length including the prompt (onnxruntime-genai's `max_length`); the tighter of the two limits wins. */
  max_length?: number;
  stop?: string[];
  seed?: number;
  n?: number;
  repetition_penalty?: number;
}

export type GenerateInput =
  | { kind: 'chat'; messages: ChatMessage[] }
  /** Used exactly as given: no template, the tokenizer's own special-token handling applies. */
  | { kind: 'prompt'; prompt: string };

export type ErrorCode =
  | 'oom'
  /** The model cannot fit in wasm32's 4 GiB of memory (refused before loading its weights). */
  | 'too-large'
  | 'device-lost'
  | 'load-failed'
  | 'bad-request'
  | 'not-loaded'
  | 'busy'
  | 'worker-crashed'
  | 'internal';

// ---- main thread -> worker ----

export interface LoadRequest {
  type: 'load';
  requestId: string;
  source: ModelSource;
  layout: ModelLayout;
  backend: BackendPreference;
  dtype: WeightDtype;
  /** Shown in responses (`model` of a chat.completion); defaults to the folder's name. */
  modelName?: string;
  /**
   * How onnxruntime-web gets the weights of a stored (Blob) model: `on-demand` (default) reads
   * each tensor from the Blob as the session is built, so the worker never holds the whole file;
   * `whole-file` reads the file into one buffer first (diagnostics and benchmarks).
   */
  weightsReading?: 'on-demand' | 'whole-file';
}

export interface GenerateRequest {
  type: 'generate';
  requestId: string;
  input: GenerateInput;
  params: GenerationParams;
}

export interface InterruptRequest {
  type: 'interrupt';
  requestId: string;
  /** The generate request to stop; all running ones when absent. */
  target?: string;
}

export interface UnloadRequest {
  type: 'unload';
  requestId: string;
}

/** Diagnostics: lets tests prove that a crashed worker is noticed and can be replaced. */
export interface SimulateCrashRequest {
  type: 'simulate-crash';
  requestId: string;
  mode: 'uncaught' | 'hang';
}

export type WorkerRequest =
  LoadRequest | GenerateRequest | InterruptRequest | UnloadRequest | SimulateCrashRequest;

// ---- worker -> main thread ----

export type LoadPhase = 'fetch' | 'session' | 'warmup';

export interface ProgressMessage {
  type: 'progress';
  requestId: string;
  phase: LoadPhase;
  file?: string;
  loaded: number;
  total: number;
}

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
  isFallbackAdapter: boolean;
  shaderF16: boolean;
}

export interface ReadyMessage {
  type: 'ready';
  requestId: string;
  backend: Backend;
  layout: ModelLayout;
  /** The weight variant actually loaded (`q4`/`q4f16` for the web layout, `int4` for genai). */
  dtype: string;
  adapter: AdapterInfo | null;
  threads: number;
  crossOriginIsolated: boolean;
  modelName: string;
  loadMs: number;
  /** Which engine serves (absent only from workers older than the CPU decoder). */
  engine?: EngineKind;
  /** Set when the CPU decoder serves. */
  cpu?: CpuDecoderInfo;
  /** Why the CPU decoder refused this model, when onnxruntime-web wasm serves it instead. */
  cpuRefusal?: string;
  /** Set when a CPU engine runs one thread only because the page is not cross-origin isolated. */
  singleThreadReason?: string;
}

export interface StartMessage {
  type: 'start';
  requestId: string;
  promptTokens: number;
}

export interface UpdateMessage {
  type: 'update';
  requestId: string;
  /** Choice index (several when `n` > 1; choices are generated one after another). */
  index: number;
  /** Text added since the previous update of this choice. */
  text: string;
  tokenIds: number[];
  tokenCount: number;
  tokensPerSecond: number;
}

export type FinishReason = 'stop' | 'length';

export interface ChoiceResult {
  index: number;
  text: string;
  finishReason: FinishReason;
  tokenIds: number[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Timings {
  /** Time to first token of the first choice, from the start of the request. */
  ttftMs: number;
  tokensPerSecond: number;
  totalMs: number;
}

export interface CompleteMessage {
  type: 'complete';
  requestId: string;
  /** Choice 0's text and finish reason; all choices are in `choices`. */
  text: string;
  finishReason: FinishReason;
  choices: ChoiceResult[];
  usage: Usage;
  timings: Timings;
  interrupted: boolean;
}

export interface UnloadedMessage {
  type: 'unloaded';
  requestId: string;
}

export interface ErrorMessage {
  type: 'error';
  requestId: string;
  code: ErrorCode;
  message: string;
}

/** Sent every few seconds while the worker's event loop is free; silence means hung or dead. */
export interface HeartbeatMessage {
  type: 'heartbeat';
  requestId: '';
  at: number;
}

export type WorkerResponse =
  | ProgressMessage
  | ReadyMessage
  | StartMessage
  | UpdateMessage
  | CompleteMessage
  | UnloadedMessage
  | ErrorMessage
  | HeartbeatMessage;

export class InferenceError extends Error {
  override name = 'InferenceError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
