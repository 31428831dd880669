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

/** A tokenizer built from tokenizer.json and tokenizer_config.json contents (no network). */
export class TextTokenizer {
  private readonly inner: Tokenizer;
  readonly chatTemplate: string;
  readonly bosToken: string;
  readonly eosToken: string;
  private template: Template | null = null;

  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in tokenizerJson)) {
      throw new Error('tokenizer.json: expected an object with a "model" key');
    }
    this.inner = new Tokenizer(tokenizerJson, tokenizerConfig);
    const template = tokenizerConfig.chat_template;
    if (typeof template === 'string') this.chatTemplate = template;
    else if (Array.isArray(template)) {
      const named = template.find((t: Json) => t?.name === 'default') as Json | undefined;
      this.chatTemplate = typeof named?.template === 'string' ? named.template : PHI3_CHAT_TEMPLATE;
    } else this.chatTemplate = PHI3_CHAT_TEMPLATE;
    this.bosToken = tokenText(tokenizerConfig.bos_token) ?? '<s>';
    this.eosToken = tokenText(tokenizerConfig.eos_token) ?? '<|endoftext|>';
  }

  /** Parses the two files' bytes or text. Errors name the file. */
  static fromFiles(
    tokenizerJson: string | Uint8Array,
    tokenizerConfig?: string | Uint8Array | null,
  ): TextTokenizer {
    return new TextTokenizer(
      parseJsonFile('tokenizer.json', tokenizerJson),
      tokenizerConfig ? parseJsonFile('tokenizer_config.json', tokenizerConfig) : {},
    );
  }

  encode(text: string, { addSpecialTokens = true }: { addSpecialTokens?: boolean } = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(
    ids: number[],
    { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {},
  ): string {
    if (ids.length === 0) return '';
    return this.inner.decode(ids, { skip_special_tokens: skipSpecialTokens });
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
   * Token ids of a chat. The template writes every special token itself, so the tokenizer adds
   * none (as transformers' apply_chat_template does).
   */
  encodeChat(messages: ChatMessage[]): number[] {
    return this.encode(this.renderChat(messages), { addSpecialTokens: false });
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

/**
 * Turns a stream of token ids into a stream of text pieces whose concatenation equals decoding
 * all ids at once. Decoding a suffix of ids on its own can lose a leading space (Llama-style
 * decoders strip it) or cut a multi-byte character in half (byte-fallback tokens), so each step
 * decodes a short window twice and emits only the difference, holding text back while it ends
 * in an incomplete character.
 */
export class StreamingDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tokenizer: TextTokenizer) {}

  push(id: number): string {
    this.ids.push(id);
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (full.length > prefix.length && !full.endsWith('\uFFFD') && full.startsWith(prefix)) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  /** Text still held back at the end of the stream (an incomplete character decodes as U+FFFD). */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return full.startsWith(prefix) ? full.slice(prefix.length) : '';
  }
}
