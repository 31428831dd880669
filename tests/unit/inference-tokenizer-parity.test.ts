// The app tokenizes and decodes the way each layout's own runtime does. The expected ids and texts
// for the genai layout were recorded from onnxruntime-genai 0.18.0 (og.Tokenizer.encode / decode /
// create_stream) on the fixture's genai folder, whose tokenizer files have the same structure as
// Phi-3-mini's own (Prepend normalizer, rstrip chat markers, no <s>, Strip decoder). transformers
// 5.24's AutoTokenizer gives the same ids on the web folder, and the transformers-side decoding.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { StreamingDecoder, TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';

type Json = Record<string, unknown>;

/** [text, ids onnxruntime-genai encodes]. */
const GENAI_ENCODE: [string, number[]][] = [
  // The seed's prompt: markers with no newlines; text after each marker gets its own "▁".
  [
    '<|system|>You are a helpful assistant.<|end|><|user|>Tell me a joke about MLflow.<|end|><|assistant|>',
    [
      32006, 353, 315, 375, 475, 354, 353, 356, 334, 338, 328, 343, 334, 476, 272, 32007, 32010,
      365, 441, 334, 367, 327, 354, 353, 332, 337, 333, 327, 474, 353, 303, 302, 328, 384, 345, 272,
      32007, 32001,
    ],
  ],
  // The chat template's shape: the newline after each marker is swallowed (rstrip).
  [
    '<|system|>\nYou are brief.<|end|>\n<|user|>\nWhat is MLflow?<|end|>\n<|assistant|>\n',
    [
      32006, 353, 315, 375, 475, 387, 340, 331, 327, 328, 272, 32007, 32010, 466, 330, 362, 377,
      353, 303, 302, 328, 384, 345, 289, 32007, 32001,
    ],
  ],
  // Text right after each kind of added token.
  ['<|user|>Hi<|end|>', [32010, 464, 331, 32007]],
  ['<|assistant|>Hi', [32001, 464, 331]],
  ['<|end|>Hi', [32007, 464, 331]],
  ['<|endoftext|>Hi', [32000, 464, 331]],
  ['<|endoftext|> Hi', [32000, 353, 464, 331]],
  ['<|placeholder1|>Hi', [32002, 464, 331]],
  ['<s>Hi', [1, 464, 331]],
  ['<s> Hi', [1, 353, 464, 331]],
  ['</s>Hi', [2, 464, 331]],
  ['</s>  Hi', [2, 464, 331]],
  ['<unk>Hi', [0, 464, 331]],
  // Leading and trailing spaces: one "▁" is always prepended, spaces are kept.
  ['Hi', [464, 331]],
  [' Hi', [353, 464, 331]],
  ['  Hi', [353, 353, 464, 331]],
  ['Hi ', [464, 331, 353]],
  ['Hi  ', [464, 331, 353, 353]],
  [' ', [353, 353]],
  ['', []],
  ['a  b', [354, 353, 387]],
  [
    '<|user|>  spaced  <|end|>  after',
    [32010, 357, 338, 323, 325, 406, 353, 353, 32007, 354, 328, 342, 360],
  ],
  // Newlines, tabs and carriage returns are byte tokens.
  ['line one\nline two', [423, 369, 327, 471, 327, 13, 334, 369, 327, 355, 345, 337]],
  ['\nHi', [353, 13, 298, 331]],
  ['<|user|>\n\nHi\n\n<|end|>\n\n', [32010, 464, 331, 13, 13, 32007]],
  ['tab\there', [355, 323, 324, 12, 356, 364]],
  ['crlf\r\nnext', [366, 340, 334, 328, 16, 13, 336, 327, 346, 342]],
  // Characters outside the vocabulary fall back to their UTF-8 bytes.
  ['Café naïve', [353, 293, 323, 328, 198, 172, 424, 323, 198, 178, 344, 327]],
  ['東京', [353, 233, 160, 180, 231, 189, 175]],
  ['emoji 🙂!', [353, 442, 337, 332, 331, 353, 243, 162, 156, 133, 259]],
  ['<|user|>🙂<|end|>', [32010, 353, 243, 162, 156, 133, 32007]],
  ['x<|end|>ÿ', [353, 346, 32007, 353, 198, 194]],
];

/** [ids, the text onnxruntime-genai's decode gives]. */
const GENAI_DECODE: [number[], string][] = [
  // The first token's leading space is kept (nothing strips it at the start)...
  [[464, 441, 384], ' Hello'],
  [[353], ' '],
  // ...while a token right after a skipped special token loses it.
  [[32001, 464, 441, 384], 'Hello'],
  [[32001, 353, 464], ' H'],
  [[1, 464], 'H'],
  [[0, 464], 'H'],
  [[346, 32002, 347], 'xy'],
  [[346, 32002, 353, 347], 'xy'],
  // Only a space is dropped, not a newline; `</s>` is not special, so it is text.
  [[32007, 13, 464], '\n H'],
  [[13, 464], '\n H'],
  [[2, 464], '</s> H'],
  // Byte tokens join into characters; a cut or broken character ends the text with U+FFFD.
  [[353, 198, 172], ' é'],
  [[32001, 198, 172, 353], 'é '],
  [[346, 198], 'x\uFFFD'],
  [[346, 198, 346], 'x\uFFFD'],
  // An id past the vocabulary decodes as the unknown token; nothing but special tokens as U+FFFD.
  [[346, 32050, 347], 'x<unk>y'],
  [[32007], '\uFFFD'],
  [[], ''],
];

let genaiDir = '';
let files: { json: Json; config: Json };
let genai: TextTokenizer;
let hf: TextTokenizer;

beforeAll(async () => {
  genaiDir = (await ensureTinyPhi3()).genai;
  files = {
    json: JSON.parse(readFileSync(join(genaiDir, 'tokenizer.json'), 'utf8')) as Json,
    config: JSON.parse(readFileSync(join(genaiDir, 'tokenizer_config.json'), 'utf8')) as Json,
  };
  genai = new TextTokenizer(files.json, files.config, { runtime: 'onnxruntime-genai' });
  hf = new TextTokenizer(files.json, files.config, { runtime: 'transformers' });
});

function streamed(tok: TextTokenizer, ids: number[], opts = {}): string[] {
  const d = new StreamingDecoder(tok, opts);
  return [...ids.map((id) => d.push(id)), d.flush()];
}

describe('the genai layout tokenizes as onnxruntime-genai does', () => {
  it.each(GENAI_ENCODE)('encodes %j', (text, ids) => {
    expect(genai.encode(text)).toEqual(ids);
    // onnxruntime-genai adds no special tokens, whatever is asked.
    expect(genai.encode(text, { addSpecialTokens: false })).toEqual(ids);
  });

  it.each(GENAI_DECODE)('decodes %j', (ids, text) => {
    expect(genai.decode(ids)).toBe(text);
  });

  it('streams the same text as decoding all new ids at once', () => {
    for (const [ids, text] of GENAI_DECODE) {
      // onnxruntime-genai's one-call decode is the judge; its empty-text U+FFFD aside.
      if (text === '\uFFFD' || ids.length === 0) continue;
      expect(streamed(genai, ids).join(''), JSON.stringify(ids)).toBe(text);
    }
  });

  it('holds back a character cut between byte tokens until it is whole', () => {
    // "🙂" is four byte tokens after "▁".
    expect(streamed(genai, [353, 243, 162, 156, 133])).toEqual([' ', '', '', '', '🙂', '']);
  });

  it('keeps the first new token’s leading space in a {prompt} answer, even after the prompt', () => {
    const prompt = genai.encode('<|user|>Hi<|end|><|assistant|>');
    const answer = [464, 441, 384];
    expect(genai.decodeAnswer(answer, { promptIds: prompt })).toBe(' Hello');
    // A chat message drops it, as MLflow's llm/v1/chat does.
    expect(genai.decodeAnswer(answer, { promptIds: prompt, trimStart: true })).toBe('Hello');
  });

  it('reads a Metaspace pre-tokenizer the way onnxruntime-genai does: "▁" after every added token, no <s>', () => {
    // The fixture's earlier files: Metaspace with prepend_scheme "first", no rstrip, a
    // post-processor and add_bos_token that ask for <s>. Ids recorded from onnxruntime-genai 0.18.0.
    const json = {
      ...files.json,
      normalizer: null,
      pre_tokenizer: {
        type: 'Metaspace',
        replacement: '\u2581',
        prepend_scheme: 'first',
        split: false,
      },
      added_tokens: (files.json.added_tokens as Json[]).map((t) => ({ ...t, rstrip: false })),
      post_processor: {
        type: 'TemplateProcessing',
        single: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
        ],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
    };
    const old = new TextTokenizer(
      json,
      { ...files.config, add_bos_token: true },
      {
        runtime: 'onnxruntime-genai',
      },
    );
    expect(old.encode('<|system|>You are')).toEqual([32006, 353, 315, 375, 475]);
    expect(old.encode('<|user|>\nWhat is')).toEqual([32010, 353, 13, 313, 330, 362, 377]);
    expect(old.encode(' Hello')).toEqual([353, 464, 441, 384]);
    expect(old.encode('é😀')).toEqual([353, 198, 172, 243, 162, 155, 131]);
    expect(old.decode([32006, 353, 315, 375, 475])).toBe('You are');
    // transformers reads the same files differently: "▁" only at the very start, and <s>.
    const asHf = new TextTokenizer(json, { ...files.config, add_bos_token: true });
    expect(asHf.encode('<|system|>You are')).toEqual([1, 32006, 315, 375, 475]);
  });
});

describe('the web layout tokenizes as transformers does', () => {
  it('gives the same ids as onnxruntime-genai for files shaped like Phi-3-mini’s', () => {
    for (const [text, ids] of GENAI_ENCODE) expect(hf.encode(text), text).toEqual(ids);
  });

  it('adds <s> only when the post-processor in tokenizer.json does, as transformers 5 does', () => {
    // Checked against transformers 5.24 AutoTokenizer: it reads the post-processor and not
    // tokenizer_config.json's add_bos_token. Phi-3-mini's own files agree with each other.
    expect(hf.encode('Hi')).toEqual([464, 331]);
    expect(
      new TextTokenizer(files.json, { ...files.config, add_bos_token: true }).encode('Hi'),
    ).toEqual([464, 331]);
    const bosTemplate = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    };
    const withBos = new TextTokenizer({ ...files.json, post_processor: bosTemplate }, files.config);
    expect(withBos.encode('Hi')).toEqual([1, 464, 331]);
    expect(withBos.encode('Hi', { addSpecialTokens: false })).toEqual([464, 331]);
    // onnxruntime-genai adds none, even then.
    const genaiBos = new TextTokenizer(
      { ...files.json, post_processor: bosTemplate },
      files.config,
      {
        runtime: 'onnxruntime-genai',
      },
    );
    expect(genaiBos.encode('Hi')).toEqual([464, 331]);
  });

  it('encodes a chat as MLflow’s pipeline does: the rendered template, no <s> for Phi-3', () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    expect(hf.encodeChat(messages)).toEqual([32010, 464, 331, 32007, 32001]);
    expect(genai.encodeChat(messages)).toEqual([32010, 464, 331, 32007, 32001]);
  });

  it('strips the one leading space at the start, not after special tokens', () => {
    expect(hf.decode([464, 441, 384])).toBe('Hello');
    expect(hf.decode([346, 32002, 353, 347])).toBe('x y');
    expect(hf.decode([353, 198, 172])).toBe('é');
    // Plain text comes back exactly: one "▁" prepended, one space stripped.
    for (const text of ['  two  spaces ', 'line\nbreak', 'Café 🙂']) {
      expect(hf.decode(hf.encode(text))).toBe(text);
    }
  });

  it('decodes a {prompt} answer as the continuation of the prompt: its leading space is kept', () => {
    const prompt = hf.encode('<|user|>Hi<|end|><|assistant|>');
    expect(hf.decodeAnswer([464, 441, 384], { promptIds: prompt })).toBe(' Hello');
    // A prompt with no text at all: the answer is the whole text, stripped as decode strips it.
    expect(hf.decodeAnswer([464, 441, 384], { promptIds: [32001] })).toBe('Hello');
    // A chat message: leading whitespace dropped (MLflow's llm/v1/chat lstrip).
    expect(hf.decodeAnswer([13, 464], { promptIds: prompt, trimStart: true })).toBe('H');
  });

  it('a special token in the middle of an answer does not eat the next token’s space', () => {
    const prompt = hf.encode('<|user|>Hi<|end|><|assistant|>');
    const ids = [346, 32002, 353, 347];
    expect(hf.decodeAnswer(ids, { promptIds: prompt })).toBe(
      hf.decode([...prompt, ...ids]).slice(hf.decode(prompt).length),
    );
  });

  it('streams pieces that add up to decode(prompt + new) minus decode(prompt) (property)', () => {
    const prompt = hf.encode('<|user|>Tell me a story<|end|><|assistant|>');
    const base = hf.decode(prompt);
    const id = fc.oneof(
      fc.integer({ min: 259, max: 500 }),
      fc.integer({ min: 3, max: 258 }),
      fc.constantFrom(32002, 32006, 2),
    );
    fc.assert(
      fc.property(fc.array(id, { maxLength: 12 }), (ids) => {
        const full = hf.decode([...prompt, ...ids]);
        fc.pre(!full.includes('\uFFFD'));
        expect(streamed(hf, ids, { promptIds: prompt }).join('')).toBe(full.slice(base.length));
      }),
      { numRuns: 200 },
    );
  });
});
