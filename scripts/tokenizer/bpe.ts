// A small Llama-style BPE tokenizer (SentencePiece conventions: spaces become "▁", a "▁" is
// prepended to each piece of text between added tokens, unknown characters fall back to <0xNN>
// byte tokens) with Phi-3's special tokens at their real ids and flags. Trained deterministically on a fixed corpus, so the files never change unless
// this code does.
import { CORPUS } from './corpus.ts';

export const SPACE = '\u2581';

/** Phi-3's added tokens at their real ids (microsoft/Phi-3-mini-4k-instruct tokenizer). */
export const PHI3_ADDED_TOKENS: readonly { id: number; content: string }[] = [
  { id: 0, content: '<unk>' },
  { id: 1, content: '<s>' },
  { id: 2, content: '</s>' },
  { id: 32000, content: '<|endoftext|>' },
  { id: 32001, content: '<|assistant|>' },
  { id: 32002, content: '<|placeholder1|>' },
  { id: 32003, content: '<|placeholder2|>' },
  { id: 32004, content: '<|placeholder3|>' },
  { id: 32005, content: '<|placeholder4|>' },
  { id: 32006, content: '<|system|>' },
  { id: 32007, content: '<|end|>' },
  { id: 32008, content: '<|placeholder5|>' },
  { id: 32009, content: '<|placeholder6|>' },
  { id: 32010, content: '<|user|>' },
];

/** The base vocabulary (ids 0..31999) is SentencePiece's; added tokens start here. */
export const BASE_VOCAB_SIZE = 32000;

/** Phi-3's chat template, rewritten: system/user/assistant turns, each closed by <|end|>. */
export const PHI3_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '<|end|>\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '<|end|>\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '<|end|>\\n' }}" +
  "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

export interface TrainedBpe {
  /** Token strings in id order for ids 0..(vocab.length-1); padding ids are unreachable names. */
  vocab: string[];
  merges: [string, string][];
  /** Ids below this come from training (special, bytes, characters, merges); the rest are padding. */
  learnedCount: number;
}

function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Trains `mergeCount` merges on the corpus; ties go to the lexically smaller pair. */
export function trainBpe(mergeCount = 320, corpus = CORPUS): TrainedBpe {
  const words = new Map<string, number>();
  for (const line of corpus.split('\n')) {
    if (!line.trim()) continue;
    for (const w of line.trim().split(' ')) {
      const key = SPACE + w;
      words.set(key, (words.get(key) ?? 0) + 1);
    }
  }
  // Characters: everything printable in ASCII plus the corpus's own, so common text never
  // needs byte fallback; anything else (emoji, accents) exercises it.
  const chars = new Set<string>([SPACE]);
  for (let c = 0x21; c < 0x7f; c++) chars.add(String.fromCharCode(c));
  for (const w of words.keys()) for (const ch of w) chars.add(ch);

  const vocab: string[] = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) vocab.push(byteToken(b));
  vocab.push(...[...chars].sort());
  const known = new Set(vocab);

  let segmented = [...words.entries()].map(([w, n]) => ({ parts: [...w], n }));
  const merges: [string, string][] = [];
  while (merges.length < mergeCount) {
    const counts = new Map<string, number>();
    for (const { parts, n } of segmented)
      for (let i = 0; i + 1 < parts.length; i++) {
        const key = parts[i] + ' ' + parts[i + 1];
        counts.set(key, (counts.get(key) ?? 0) + n);
      }
    let best = '';
    let bestCount = 0;
    for (const [k, c] of counts)
      if (c > bestCount || (c === bestCount && k < best)) {
        best = k;
        bestCount = c;
      }
    if (bestCount < 2) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push([a, b]);
    const joined = a + b;
    if (!known.has(joined)) {
      known.add(joined);
      vocab.push(joined);
    }
    segmented = segmented.map(({ parts, n }) => {
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(joined);
          i++;
        } else next.push(parts[i]!);
      }
      return { parts: next, n };
    });
  }
  const learnedCount = vocab.length;
  // Pad to SentencePiece's 32000 with names no merge can build, so real ids keep their places.
  for (let id = learnedCount; id < BASE_VOCAB_SIZE; id++) vocab.push(`<unused${id}>`);
  return { vocab, merges, learnedCount };
}

/**
 * The added tokens' flags as microsoft/Phi-3-mini-4k-instruct ships them: the chat markers (and
 * `</s>`) swallow the whitespace after them (`rstrip`), so `<|user|>\nHi` encodes as
 * `<|user|>`, `▁Hi`; `</s>` is not special (it is decoded, not skipped).
 */
function addedTokenFlags(id: number) {
  return {
    single_word: false,
    lstrip: false,
    rstrip: id === 2 || (id > 32000 && id <= 32010),
    normalized: false,
    special: id !== 2,
  };
}

/**
 * tokenizer.json in the Hugging Face `tokenizers` format, with the same pipeline as Phi-3-mini's
 * own file: a normalizer that prepends "▁" to every piece of text between added tokens and turns
 * spaces into "▁" (no pre-tokenizer), a post-processor that adds nothing (no `<s>`), and a decoder
 * that maps "▁" back to spaces, joins byte tokens and strips the first leading space.
 */
export function tokenizerJson(bpe: TrainedBpe): unknown {
  const vocab: Record<string, number> = {};
  bpe.vocab.forEach((t, id) => (vocab[t] = id));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: PHI3_ADDED_TOKENS.map((t) => ({
      id: t.id,
      content: t.content,
      ...addedTokenFlags(t.id),
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {},
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

export function tokenizerConfigJson(modelMaxLength: number): unknown {
  const decoder: Record<string, unknown> = {};
  for (const t of PHI3_ADDED_TOKENS) {
    const { lstrip, normalized, rstrip, single_word, special } = addedTokenFlags(t.id);
    decoder[String(t.id)] = {
      content: t.content,
      lstrip,
      normalized,
      rstrip,
      single_word,
      special,
    };
  }
  // Phi-3-mini's config: no `<s>` is added (the chat template writes every marker itself).
  return {
    add_bos_token: false,
    add_eos_token: false,
    added_tokens_decoder: decoder,
    bos_token: '<s>',
    chat_template: PHI3_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|endoftext|>',
    legacy: false,
    model_max_length: modelMaxLength,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };
}

export function specialTokensMapJson(): unknown {
  const tok = (content: string) => ({
    content,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
  });
  return {
    bos_token: tok('<s>'),
    eos_token: tok('<|endoftext|>'),
    pad_token: tok('<|endoftext|>'),
    unk_token: tok('<unk>'),
  };
}

/** added_tokens.json lists only the tokens beyond the base vocabulary. */
export function addedTokensJson(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of PHI3_ADDED_TOKENS) if (t.id >= BASE_VOCAB_SIZE) out[t.content] = t.id;
  return out;
}
