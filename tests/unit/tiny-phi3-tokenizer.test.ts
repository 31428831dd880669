// The fixture tokenizer keeps Phi-3's special tokens at their real ids, splits chat markup around
// them, falls back to bytes for characters it does not know, and decodes back to the same text.
// transformers.js's tokenizer is checked against a small reference BPE written from the files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyPhi3, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

interface TokenizerFile {
  added_tokens: { id: number; content: string; rstrip: boolean; special: boolean }[];
  model: { vocab: Record<string, number>; merges: string[]; byte_fallback: boolean };
}

/** Reference encoder, as Phi-3-mini's own files say: split on added tokens (those marked rstrip
 * swallow the whitespace after them), "▁" prepended to every piece of text and for its spaces,
 * merges lowest rank first, then bytes for anything not in the vocabulary. No `<s>` is added. */
function referenceEncode(tok: TokenizerFile, text: string): number[] {
  const added = [...tok.added_tokens].sort((a, b) => b.content.length - a.content.length);
  const ranks = new Map(tok.model.merges.map((m, i) => [m, i]));
  const ids: number[] = [];
  let rest = text;
  while (rest.length > 0) {
    let cut = rest.length;
    let hit: (typeof added)[number] | null = null;
    for (const a of added) {
      const at = rest.indexOf(a.content);
      if (at >= 0 && (at < cut || (at === cut && hit === null))) {
        cut = at;
        hit = a;
      }
    }
    const plain = rest.slice(0, cut);
    if (plain.length > 0) {
      const word = '\u2581' + plain.replaceAll(' ', '\u2581');
      let parts = [...word];
      for (;;) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i + 1 < parts.length; i++) {
          const r = ranks.get(`${parts[i]} ${parts[i + 1]}`);
          if (r !== undefined && r < bestRank) {
            bestRank = r;
            best = i;
          }
        }
        if (best < 0) break;
        parts = [
          ...parts.slice(0, best),
          parts[best]! + parts[best + 1]!,
          ...parts.slice(best + 2),
        ];
      }
      for (const p of parts) {
        const id = tok.model.vocab[p];
        if (id !== undefined) ids.push(id);
        else
          for (const b of new TextEncoder().encode(p))
            ids.push(tok.model.vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`]!);
      }
    }
    if (hit) {
      ids.push(hit.id);
      rest = rest.slice(cut + hit.content.length);
      if (hit.rstrip) rest = rest.trimStart();
    } else rest = '';
  }
  return ids;
}

const TEXTS = [
  'Hello! What is the capital of France?',
  '<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nTell me a story about a cat.<|end|>\n<|assistant|>\n',
  // The seed's prompt example writes the markup without newlines.
  '<|system|>You are a helpful assistant.<|end|><|user|>Write a poem about the sea<|end|><|assistant|>',
  '  two leading spaces, double  space and a trailing one ',
  'Café, naïve, 東京 and an emoji 🙂 go through byte fallback.',
  'Run 42 logged loss=0.125 at step 1000; lr 3e-4 (batch 32).',
  '<s>already has a bos</s><|endoftext|>',
];

let paths: TinyPhi3Paths;
let tokenizer: PreTrainedTokenizer;
let file: TokenizerFile;

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '';
  tokenizer = await AutoTokenizer.from_pretrained(paths.web);
  file = JSON.parse(readFileSync(join(paths.web, 'tokenizer.json'), 'utf8')) as TokenizerFile;
});

describe('tiny Phi-3 tokenizer', () => {
  it('has the Phi-3 special tokens at their real ids', () => {
    const expected: Record<string, number> = {
      '<unk>': 0,
      '<s>': 1,
      '</s>': 2,
      '<|endoftext|>': 32000,
      '<|assistant|>': 32001,
      '<|placeholder1|>': 32002,
      '<|placeholder4|>': 32005,
      '<|system|>': 32006,
      '<|end|>': 32007,
      '<|placeholder5|>': 32008,
      '<|placeholder6|>': 32009,
      '<|user|>': 32010,
    };
    for (const [content, id] of Object.entries(expected)) {
      expect(tokenizer.encode(content, { add_special_tokens: false })).toEqual([id]);
      expect(tokenizer.decode([id])).toBe(content);
    }
    expect(Object.keys(file.model.vocab)).toHaveLength(32000);
    expect(file.model.byte_fallback).toBe(true);
    for (const folder of [paths.web, paths.genai]) {
      const added = JSON.parse(readFileSync(join(folder, 'added_tokens.json'), 'utf8'));
      expect(added['<|end|>']).toBe(32007);
      expect(added['<|user|>']).toBe(32010);
    }
  });

  it.each(TEXTS)('encodes like the reference BPE and decodes back exactly: %j', (text) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false });
    expect(ids).toEqual(referenceEncode(file, text));
    // Plain text: encoding prepends one "▁" and decoding strips one space, so it comes back
    // exactly. Chat markers swallow the whitespace after them, so markup does not.
    if (!/<\|?\/?[a-z]+\|?>/.test(text)) expect(tokenizer.decode(ids)).toBe(text);
    // Phi-3's tokenizer_config.json says add_bos_token false and its post-processor adds nothing.
    expect(tokenizer.encode(text)).toEqual(ids);
  });

  it('uses learned multi-character tokens for ordinary English and bytes only for the rest', () => {
    const ids = tokenizer.encode('the model and the runs', { add_special_tokens: false });
    expect(ids.length).toBeLessThan(8);
    const emoji = tokenizer.encode('🙂', { add_special_tokens: false });
    // "▁" then the four UTF-8 bytes of the emoji as <0xNN> tokens (ids 3..258).
    expect(emoji.slice(1).every((id) => id >= 3 && id < 259)).toBe(true);
    expect(emoji).toHaveLength(5);
  });

  it('renders the Phi-3 chat template', () => {
    const text = tokenizer.apply_chat_template(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Bye' },
      ],
      { tokenize: false, add_generation_prompt: true },
    );
    expect(text).toBe(
      '<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n',
    );
  });
});
