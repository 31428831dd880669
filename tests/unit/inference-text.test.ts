// Tokenizing, chat templates, streaming decode, stop strings and sampling: the pure parts of
// serving a chat model, on the tiny Phi-3 fixture's real tokenizer files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyRepetitionPenalty,
  argmax,
  sampleToken,
  seededRandom,
  topIndices,
} from '../../src/lib/inference/sampling.ts';
import { StopMatcher } from '../../src/lib/inference/stopping.ts';
import {
  PHI3_CHAT_TEMPLATE,
  StreamingDecoder,
  TextTokenizer,
} from '../../src/lib/inference/tokenizer.ts';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';

let tok: TextTokenizer;
beforeAll(async () => {
  const { genai } = await ensureTinyPhi3();
  tok = TextTokenizer.fromFiles(
    readFileSync(join(genai, 'tokenizer.json')),
    readFileSync(join(genai, 'tokenizer_config.json')),
  );
});

describe('tokenizer', () => {
  it('knows the Phi-3 special tokens at their real ids', () => {
    expect(tok.tokenId('<|endoftext|>')).toBe(32000);
    expect(tok.tokenId('<|assistant|>')).toBe(32001);
    expect(tok.tokenId('<|system|>')).toBe(32006);
    expect(tok.tokenId('<|end|>')).toBe(32007);
    expect(tok.tokenId('<|user|>')).toBe(32010);
  });

  it('round-trips text, including characters that need byte fallback', () => {
    for (const s of ['Hello world', 'naïve café', 'emoji 🙂 and 漢字', 'inner  double  spaces ']) {
      expect(tok.decode(tok.encode(s, { addSpecialTokens: false }))).toBe(s);
    }
  });

  it('renders the chat template with the generation prompt and encodes chat tokens as single ids', () => {
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hi there' },
    ];
    expect(tok.renderChat(messages)).toBe(
      '<|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n',
    );
    const ids = tok.encodeChat(messages);
    expect(ids[0]).toBe(32006);
    expect(ids.filter((i) => i === 32007)).toHaveLength(2);
    // <|assistant|> swallows the newline after it (rstrip, as in Phi-3's own tokenizer.json).
    expect(ids.at(-1)).toBe(32001);
  });

  it('falls back to the Phi-3 format when tokenizer_config.json has no template', () => {
    const json = JSON.parse(readFileSync(join(tokDir(), 'tokenizer.json'), 'utf8'));
    const bare = new TextTokenizer(json, {});
    expect(bare.chatTemplate).toBe(PHI3_CHAT_TEMPLATE);
    expect(bare.renderChat([{ role: 'user', content: 'x' }])).toBe(
      '<|user|>\nx<|end|>\n<|assistant|>\n',
    );
  });

  it('names the file when tokenizer JSON is broken', () => {
    expect(() => TextTokenizer.fromFiles('{oops')).toThrow(/tokenizer\.json: not valid JSON/);
    expect(() => TextTokenizer.fromFiles('{}', '{}')).toThrow(
      /tokenizer\.json: expected an object with a "model" key/,
    );
    const json = readFileSync(join(tokDir(), 'tokenizer.json'), 'utf8');
    expect(() => TextTokenizer.fromFiles(json, '[]')).toThrow(
      /tokenizer_config\.json: expected a JSON object/,
    );
  });
});

function tokDir(): string {
  return join(process.cwd(), 'fixtures', 'generated', 'tiny-phi3', 'genai');
}

describe('streaming decode', () => {
  it('emits pieces whose concatenation equals decoding all ids at once', () => {
    const text = 'Héllo wörld! 🙂 Ünïcödé and 漢字, then   spaces.\nNew line.';
    const ids = tok.encode(text, { addSpecialTokens: false });
    const d = new StreamingDecoder(tok);
    const pieces = ids.map((id) => d.push(id));
    pieces.push(d.flush());
    expect(pieces.join('')).toBe(tok.decode(ids));
    // A multi-byte character is never shown half-way.
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
  });

  it('holds for any id sequence (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 3, max: 420 }), { maxLength: 40 }), (ids) => {
        const d = new StreamingDecoder(tok);
        const out = ids.map((id) => d.push(id)).join('') + d.flush();
        expect(out).toBe(tok.decode(ids));
      }),
      { numRuns: 200 },
    );
  });
});

describe('stop strings', () => {
  function run(pieces: string[], stops: string[]) {
    const m = new StopMatcher(stops);
    let shown = '';
    let stopped = false;
    for (const p of pieces) {
      const r = m.push(p);
      shown += r.emit;
      if (r.stop) {
        stopped = true;
        break;
      }
    }
    if (!stopped) shown += m.flush();
    return { shown, stopped, text: m.fullText };
  }

  it('finds a stop string split across pieces and never shows any of it', () => {
    const r = run(['Hello', ' wor', 'ld\n\nUs', 'er: more'], ['\n\nUser:']);
    expect(r).toEqual({ shown: 'Hello world', stopped: true, text: 'Hello world' });
  });

  it('holds back a possible beginning and releases it when it turns out not to be a stop', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('abcE').emit).toBe('abc');
    expect(m.push('N').emit).toBe('');
    expect(m.push('x').emit).toBe('ENx');
  });

  it('shows exactly the text before the first stop occurrence (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'x') }), { maxLength: 12 }),
        fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: 1, maxLength: 3 }), {
          minLength: 1,
          maxLength: 3,
        }),
        (pieces, stops) => {
          // Generation stops at the first piece (token) after which some stop string has
          // appeared; the answer is the text before the earliest occurrence at that moment. A
          // longer stop that would have started earlier but completes later never gets the chance.
          let all = '';
          let cut = -1;
          for (const piece of pieces) {
            all += piece;
            const hits = stops.map((s) => all.indexOf(s)).filter((i) => i >= 0);
            if (hits.length) {
              cut = Math.min(...hits);
              break;
            }
          }
          const r = run(pieces, stops);
          expect(r.shown).toBe(cut >= 0 ? all.slice(0, cut) : all);
          expect(r.stopped).toBe(cut >= 0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('stops when the first stop string completes, even if a longer one began earlier', () => {
    expect(run(['bc', 'c'], ['c', 'bcc'])).toMatchObject({ shown: 'b', stopped: true });
  });
});

describe('sampling', () => {
  const logits = Float32Array.from([1, 3, 2, 0.5, 2.9]);

  it('is greedy at temperature 0', () => {
    const rnd = seededRandom(1);
    for (let i = 0; i < 20; i++) {
      expect(
        sampleToken(logits, { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }, rnd),
      ).toBe(1);
    }
  });

  it('reproduces the same draws from the same seed, and different ones from another', () => {
    const p = { temperature: 1.5, topK: 0, topP: 1, repetitionPenalty: 1 };
    const draw = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 50 }, () => sampleToken(logits, p, r));
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('follows the softmax distribution at temperature 1', () => {
    const r = seededRandom(7);
    const counts = new Array(5).fill(0);
    const N = 20000;
    for (let i = 0; i < N; i++)
      counts[sampleToken(logits, { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }, r)]++;
    const z = Array.from(logits).reduce((s, v) => s + Math.exp(v), 0);
    Array.from(logits).forEach((v, i) => expect(counts[i] / N).toBeCloseTo(Math.exp(v) / z, 1));
  });

  it('keeps only the top-k tokens', () => {
    const r = seededRandom(3);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++)
      seen.add(sampleToken(logits, { temperature: 5, topK: 2, topP: 1, repetitionPenalty: 1 }, r));
    expect([...seen].sort()).toEqual([1, 4]);
  });

  it('keeps only the nucleus for top-p', () => {
    // softmax([1,3,2,0.5,2.9]) ≈ [.05,.38,.14,.03,.35]: 0.5 needs the two best tokens.
    const r = seededRandom(5);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++)
      seen.add(
        sampleToken(logits, { temperature: 1, topK: 0, topP: 0.5, repetitionPenalty: 1 }, r),
      );
    expect([...seen].sort()).toEqual([1, 4]);
  });

  it('penalises tokens already in the context, as Hugging Face does', () => {
    const l = Float32Array.from([2, -2, 1]);
    applyRepetitionPenalty(l, [0, 1, 0], 2);
    expect(Array.from(l)).toEqual([1, -4, 1]);
    // With the penalty the greedy choice moves off the repeated token.
    expect(
      sampleToken(
        Float32Array.from([3, 2.5]),
        { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.5 },
        seededRandom(1),
        [0],
      ),
    ).toBe(1);
  });

  it('selects top indices like a full sort (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 300 }),
        fc.nat(),
        (vals, k0) => {
          const k = (k0 % vals.length) + 1;
          const want = vals
            .map((_, i) => i)
            .sort((a, b) => vals[b]! - vals[a]! || a - b)
            .slice(0, k);
          expect(topIndices(vals, k)).toEqual(want);
        },
      ),
    );
    expect(argmax([0, 5, 5, 1])).toBe(1);
  });
});
