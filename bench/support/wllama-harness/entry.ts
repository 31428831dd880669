// Page side of the wllama harness (built by build.ts, driven by Playwright from the wllama bench
// and browser test): loads a GGUF (one file or its splits) into wllama from the harness server
// and runs greedy completions of a text prompt, timing the first token and each streamed one.
// wllama 3 speaks llama.cpp's server API, whose prompt must be text here (an array of ids is
// refused), so callers pick prompts that llama.cpp and the app's tokenizer split alike and check
// the reported prompt length.
import { Wllama } from '@wllama/wllama';
import wasmUrl from '@wllama/wllama/esm/wasm/wllama.wasm?url';

export interface WllamaLoadOptions {
  /** The GGUF file, or its splits in order. */
  urls: string[];
  threads: number;
  contextLength: number;
}

export interface WllamaLoaded {
  loadMs: number;
  multiThread: boolean;
  threads: number;
  crossOriginIsolated: boolean;
  libllama: string;
}

export interface WllamaRun {
  /** Generated ids (the prompt excluded), read from the streamed log-probabilities. */
  ids: number[];
  /** Their natural-log probabilities under llama.cpp's logits (log-softmax of the chosen id). */
  logprobs: number[];
  text: string;
  promptTokens: number;
  /** Wall clock from the request to the first streamed token. */
  ttftMs: number;
  /** Wall clock from the first streamed token to the last, over the tokens after the first. */
  decodeMs: number;
  /** llama.cpp's own figures (prompt processing and generation). */
  timings: {
    prompt_n: number;
    prompt_ms: number;
    predicted_n: number;
    predicted_ms: number;
    predicted_per_second: number;
  } | null;
}

export interface WllamaHarness {
  load(opts: WllamaLoadOptions): Promise<WllamaLoaded>;
  /** Greedy decoding of `maxTokens` tokens after the prompt, end-of-generation ignored. */
  greedy(prompt: string, maxTokens: number): Promise<WllamaRun>;
  exit(): Promise<void>;
}

declare global {
  interface Window {
    __wllama: WllamaHarness;
  }
}

let wllama: Wllama | null = null;

interface StreamedLogprob {
  id?: number;
  logprob?: number;
}
interface StreamChunk {
  choices?: { text?: string; logprobs?: { content?: StreamedLogprob[] } | null }[];
  timings?: WllamaRun['timings'];
}

window.__wllama = {
  async load(opts) {
    const t = performance.now();
    const blobs: Blob[] = [];
    for (const url of opts.urls) {
      try {
        const r = await fetch(url);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        blobs.push(await r.blob());
      } catch (e) {
        throw new Error(`${url}: ${(e as Error).message} after ${blobs.length} file(s)`);
      }
    }
    wllama = new Wllama({ default: wasmUrl }, { suppressNativeLog: false });
    await wllama.loadModel(blobs, {
      n_threads: opts.threads,
      n_ctx: opts.contextLength,
      n_batch: 512,
      n_gpu_layers: 0,
      warmup: true,
    });
    return {
      loadMs: performance.now() - t,
      multiThread: wllama.isMultithread(),
      threads: wllama.getNumThreads(),
      crossOriginIsolated: self.crossOriginIsolated,
      libllama: Wllama.getLibllamaVersion(),
    };
  },

  async greedy(prompt, maxTokens) {
    if (!wllama) throw new Error('load a model first');
    const ids: number[] = [];
    const logprobs: number[] = [];
    let text = '';
    let timings: WllamaRun['timings'] = null;
    const stamps: number[] = [];
    const start = performance.now();
    let promptTokens = 0;
    await wllama.createCompletion({
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      top_k: 1,
      ignore_eos: true,
      logprobs: 1,
      n_probs: 1,
      cache_prompt: false,
      stream: true,
      onData: (chunk: unknown) => {
        // Each token arrives with its log-probability entry, which carries its id.
        const c = chunk as StreamChunk & { usage?: { prompt_tokens?: number } };
        const choice = c.choices?.[0];
        if (choice?.text) text += choice.text;
        const lp = choice?.logprobs?.content ?? [];
        for (const p of lp) {
          stamps.push(performance.now());
          ids.push(p.id ?? -1);
          logprobs.push(p.logprob ?? NaN);
        }
        if (c.timings) timings = c.timings;
        if (c.usage?.prompt_tokens) promptTokens = c.usage.prompt_tokens;
      },
    } as Parameters<Wllama['createCompletion']>[0] & {
      stream: true;
      onData: (c: unknown) => void;
    });
    const first = stamps[0] ?? performance.now();
    const last = stamps[stamps.length - 1] ?? first;
    return {
      ids,
      logprobs,
      text,
      promptTokens,
      ttftMs: first - start,
      decodeMs: last - first,
      timings,
    };
  },

  async exit() {
    await wllama?.exit();
    wllama = null;
  },
};
