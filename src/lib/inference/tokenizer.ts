import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import type { ChatMessage } from './protocol.ts';

type Json = Record<string, unknown>;

/**
 * Phi-3's chat format, used when tokenizer_config.json carries no template:
 * `<|system|>\n...<|end|>\n<|user|>\n...<|end|>\n<|assistant|>\n`.
 */
export const PHI3_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') {
    return (v as Json).content as string;
  }
  return undefined;
}

/**
 * Whose reading of the tokenizer files to follow. The same files give different ids and text in
 * transformers (the web layout, MLflow's transformers flavor) and in onnxruntime-genai (the genai
 * layout, the seed's pyfunc wrapper); the app serves each layout the way its own runtime would.
 */
export type TokenizerRuntime = 'transformers' | 'onnxruntime-genai';

export interface TokenizerOptions {
  runtime?: TokenizerRuntime;
}

const METASPACE = '\u2581';
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

function decoderSteps(decoder: unknown): Json[] {
  if (!decoder || typeof decoder !== 'object') return [];
  const d = decoder as Json;
  if (d.type === 'Sequence' && Array.isArray(d.decoders)) return d.decoders.flatMap(decoderSteps);
  return [d];
}

function prependsSpace(step: Json): boolean {
  const scheme = step.prepend_scheme;
  return scheme === 'first' || scheme === 'always' || step.add_prefix_space === true;
}

/**
 * The tokenizer.json that gives onnxruntime-genai's ids under Hugging Face's rules. onnxruntime-genai
 * prepends "▁" to every piece of text between added tokens whenever the file is SentencePiece-style,
 * whatever a Metaspace pre-tokenizer's prepend_scheme says; the Prepend normalizer is the rule that
 * does exactly that (it is what Phi-3's own file uses).
 */
function genaiView(json: Json): Json {
  const pre = json.pre_tokenizer as Json | null | undefined;
  if (
    !pre ||
    pre.type !== 'Metaspace' ||
    pre.split === true ||
    !prependsSpace(pre) ||
    (json.normalizer !== null && json.normalizer !== undefined)
  ) {
    return json;
  }
  const mark = typeof pre.replacement === 'string' ? pre.replacement : METASPACE;
  return {
    ...json,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: mark },
        { type: 'Replace', pattern: { String: ' ' }, content: mark },
      ],
    },
    pre_tokenizer: null,
  };
}

interface GenaiDecodeState {
  /** The previous token was a special token (skipped); the next one loses a leading space. */
  specialLast: boolean;
}

/**
 * Length of the longest prefix of `bytes` made of whole, well-formed UTF-8 characters, and whether
 * what follows it is malformed (as opposed to a character cut short at the end).
 */
function utf8Prefix(bytes: readonly number[]): { valid: number; malformed: boolean } {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) need = 0;
    else if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return { valid: i, malformed: true };
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return { valid: i, malformed: false };
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < min || c > max) return { valid: i, malformed: true };
    }
    i += need + 1;
  }
  return { valid: i, malformed: false };
}

const utf8 = new TextEncoder();
const utf8Text = new TextDecoder();

/** A tokenizer built from tokenizer.json and tokenizer_config.json contents (no network). */
export class TextTokenizer {
  private readonly inner: Tokenizer;
  readonly runtime: TokenizerRuntime;
  readonly chatTemplate: string;
  readonly bosToken: string;
  readonly eosToken: string;
  private readonly unkToken: string;
  private readonly added: Map<number, { content: string; special: boolean }>;
  /** The decoder maps "▁" to spaces (SentencePiece-style pieces and <0xNN> byte tokens). */
  private readonly sentencePiece: boolean;
  /** The decoder strips the space that encoding prepended (a Strip or prepending Metaspace step). */
  private readonly dummyPrefix: boolean;
  private template: Template | null = null;

  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}, options: TokenizerOptions = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in tokenizerJson)) {
      throw new Error('tokenizer.json: expected an object with a "model" key');
    }
    this.runtime = options.runtime ?? 'transformers';
    const json = this.runtime === 'onnxruntime-genai' ? genaiView(tokenizerJson) : tokenizerJson;
    this.inner = new Tokenizer(json, tokenizerConfig);
    const template = tokenizerConfig.chat_template;
    if (typeof template === 'string') this.chatTemplate = template;
    else if (Array.isArray(template)) {
      const named = template.find((t: Json) => t?.name === 'default') as Json | undefined;
      this.chatTemplate = typeof named?.template === 'string' ? named.template : PHI3_CHAT_TEMPLATE;
    } else this.chatTemplate = PHI3_CHAT_TEMPLATE;
    this.bosToken = tokenText(tokenizerConfig.bos_token) ?? '<s>';
    this.eosToken = tokenText(tokenizerConfig.eos_token) ?? '<|endoftext|>';
    this.unkToken = tokenText(tokenizerConfig.unk_token) ?? '<unk>';

    this.added = new Map();
    for (const [id, t] of this.inner.get_added_tokens_decoder()) {
      this.added.set(id, { content: t.content, special: t.special });
    }
    const steps = decoderSteps(json.decoder);
    this.sentencePiece = steps.some(
      (s) =>
        (s.type === 'Replace' && (s.pattern as Json | undefined)?.String === METASPACE) ||
        s.type === 'Metaspace',
    );
    this.dummyPrefix = steps.some(
      (s) =>
        (s.type === 'Strip' && s.content === ' ' && Number(s.start) > 0) ||
        (s.type === 'Metaspace' && prependsSpace(s)),
    );
  }

  /** Parses the two files' bytes or text. Errors name the file. */
  static fromFiles(
    tokenizerJson: string | Uint8Array,
    tokenizerConfig?: string | Uint8Array | null,
    options: TokenizerOptions = {},
  ): TextTokenizer {
    return new TextTokenizer(
      parseJsonFile('tokenizer.json', tokenizerJson),
      tokenizerConfig ? parseJsonFile('tokenizer_config.json', tokenizerConfig) : {},
      options,
    );
  }

  /**
   * Token ids of a text. `addSpecialTokens` adds what the runtime adds around a text: transformers
   * (5.x, like transformers.js) applies tokenizer.json's post-processor, whatever
   * tokenizer_config.json's add_bos_token says; onnxruntime-genai opens its tokenizer with
   * add_special_tokens off, so it adds nothing. Phi-3-mini's files agree: no `<s>` either way.
   */
  encode(text: string, { addSpecialTokens = true }: { addSpecialTokens?: boolean } = {}): number[] {
    const add = addSpecialTokens && this.runtime === 'transformers';
    return this.inner.encode(text, { add_special_tokens: add }).ids;
  }

  /**
   * Text of token ids, as the runtime decodes them. transformers strips the one space that
   * encoding prepended at the very start; onnxruntime-genai keeps a leading space and instead drops
   * the space of a token that follows a (skipped) special token.
   */
  decode(
    ids: number[],
    { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {},
  ): string {
    if (ids.length === 0) return '';
    if (this.usesGenaiDecoding) {
      const bytes: number[] = [];
      const state: GenaiDecodeState = { specialLast: false };
      for (const id of ids) this.genaiBytes(id, bytes, state, skipSpecialTokens);
      // onnxruntime-genai ends the text at the first malformed byte with one U+FFFD, and an
      // empty text (only special tokens) comes back as U+FFFD too.
      const { valid } = utf8Prefix(bytes);
      if (valid === bytes.length && valid > 0) return utf8Text.decode(new Uint8Array(bytes));
      return utf8Text.decode(new Uint8Array(bytes.slice(0, valid))) + '\uFFFD';
    }
    return this.inner.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  /** onnxruntime-genai's own decoding applies to SentencePiece-style files only. */
  get usesGenaiDecoding(): boolean {
    return this.runtime === 'onnxruntime-genai' && this.sentencePiece;
  }

  /** Appends one token's bytes the way onnxruntime-genai's SentencePiece decoder does. */
  genaiBytes(id: number, out: number[], state: GenaiDecodeState, skipSpecial = true): void {
    const added = this.added.get(id);
    let text: string;
    let special = false;
    if (added) {
      special = added.special;
      text = special && skipSpecial ? '' : added.content;
    } else {
      const piece = this.inner.id_to_token(id);
      const byte = piece === undefined ? null : BYTE_PIECE.exec(piece);
      if (byte) {
        const b = Number.parseInt(byte[1]!, 16);
        if (!(b === 0x20 && state.specialLast && this.dummyPrefix)) out.push(b);
        state.specialLast = false;
        return;
      }
      text = piece === undefined ? this.unkToken : piece.replaceAll(METASPACE, ' ');
    }
    if (text.startsWith(' ') && state.specialLast && this.dummyPrefix) text = text.slice(1);
    for (const b of utf8.encode(text)) out.push(b);
    state.specialLast = special;
  }

  /**
   * The text of newly generated ids as the app serves it: what a StreamingDecoder with the same
   * options emits in total (for transformers the continuation of `promptIds`; for
   * onnxruntime-genai the new ids decoded on their own, leading space kept).
   */
  decodeAnswer(ids: readonly number[], options: StreamOptions = {}): string {
    const decoder = new StreamingDecoder(this, options);
    let text = '';
    for (const id of ids) text += decoder.push(id);
    return text + decoder.flush();
  }

  /** Whether an id is an added token marked special (skipped when decoding). */
  isSpecial(id: number): boolean {
    return this.added.get(id)?.special === true;
  }

  tokenId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  /** Renders the chat template with the generation prompt appended. */
  renderChat(messages: ChatMessage[]): string {
    this.template ??= new Template(this.chatTemplate);
    return this.template.render({
      messages,
      add_generation_prompt: true,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
    });
  }

  /**
   * Token ids of a chat, as MLflow's llm/v1/chat serves a transformers pipeline: the template is
   * rendered to text, and the pipeline tokenizes that text with the tokenizer's own special-token
   * rule (for Phi-3's files: no `<s>`).
   */
  encodeChat(messages: ChatMessage[]): number[] {
    return this.encode(this.renderChat(messages), { addSpecialTokens: true });
  }
}

export function parseJsonFile(name: string, data: string | Uint8Array): Json {
  const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${name}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${name}: expected a JSON object at the top level`);
  }
  return value as Json;
}

export interface StreamOptions {
  /**
   * The prompt the new tokens continue. transformers decodes a continuation as
   * decode(prompt + new) minus decode(prompt), so the first new token keeps its leading space
   * (the pipeline's return_full_text=False); without a prompt the new tokens decode on their own.
   */
  promptIds?: readonly number[];
  /**
   * Drop the answer's leading whitespace, as MLflow's llm/v1/chat does with an assistant message
   * (`.lstrip()`); the `{prompt}` path keeps it.
   */
  trimStart?: boolean;
}

/**
 * Turns a stream of token ids into a stream of text pieces whose concatenation equals decoding
 * the new ids the runtime's way. For transformers, each step decodes a short window twice and
 * emits only the difference (decoding a suffix on its own would lose a leading space or cut a
 * multi-byte character in half), holding text back while it ends in an incomplete character. For
 * onnxruntime-genai it keeps the decoder's own state: the bytes of an unfinished character and
 * whether the last token was special.
 */
export class StreamingDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private readonly genai: boolean;
  private readonly genaiState: GenaiDecodeState = { specialLast: false };
  private pending: number[] = [];
  private ended = false;
  private trimming: boolean;

  constructor(
    private readonly tokenizer: TextTokenizer,
    options: StreamOptions = {},
  ) {
    this.genai = tokenizer.usesGenaiDecoding;
    this.trimming = options.trimStart === true;
    if (!this.genai && options.promptIds?.length) {
      // Start the window at the prompt's last token that decodes to text, so that decoders that
      // strip the first leading space strip it there and not from the first new token.
      const prompt = options.promptIds;
      let start = prompt.length - 1;
      while (start > 0 && tokenizer.isSpecial(prompt[start]!)) start--;
      if (!tokenizer.isSpecial(prompt[start]!)) {
        this.ids = prompt.slice(start);
        this.readOffset = this.ids.length;
      }
    }
  }

  push(id: number): string {
    return this.trim(this.genai ? this.pushGenai(id) : this.pushWindowed(id));
  }

  /** Text still held back at the end of the stream (an incomplete character decodes as U+FFFD). */
  flush(): string {
    if (this.genai) {
      const rest = this.pending.length && !this.ended ? '\uFFFD' : '';
      this.pending = [];
      this.ended = true;
      return this.trim(rest);
    }
    if (this.readOffset === this.ids.length) return '';
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return this.trim(full.startsWith(prefix) ? full.slice(prefix.length) : '');
  }

  private trim(text: string): string {
    if (!this.trimming || !text) return text;
    const rest = text.trimStart();
    if (rest) this.trimming = false;
    return rest;
  }

  private pushWindowed(id: number): string {
    this.ids.push(id);
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (full.length > prefix.length && !full.endsWith('\uFFFD') && full.startsWith(prefix)) {
      // A window never starts at a special token: skipped, it would let the decoder strip the
      // leading space of the token after it.
      if (!this.tokenizer.isSpecial(this.ids[this.readOffset]!)) {
        this.prefixOffset = this.readOffset;
      }
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  /** Like onnxruntime-genai's one-call decode: text up to the first malformed byte, then U+FFFD. */
  private pushGenai(id: number): string {
    if (this.ended) return '';
    this.tokenizer.genaiBytes(id, this.pending, this.genaiState);
    const { valid, malformed } = utf8Prefix(this.pending);
    const text = utf8Text.decode(new Uint8Array(this.pending.slice(0, valid)));
    this.pending = this.pending.slice(valid);
    if (malformed) {
      this.ended = true;
      this.pending = [];
      return text + '\uFFFD';
    }
    return text;
  }
}
