// The ONNX-to-GGUF converter behind the wllama bench: int4 blocks keep their values when repacked
// from MatMulNBits to Q4_0, fp16 rounding is exact, the GGUF files read back with the keys, types,
// offsets and splits llama.cpp expects, and the tiny Phi-3 maps onto llama.cpp's phi3 tensors.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GGML_TYPE,
  floatToHalf,
  matMulNBitsToQ4_0,
  str,
  u32,
  writeGguf,
  type GgufTensor,
  type GgufValue,
} from '../../bench/support/gguf.ts';
import { planPhi3Gguf, ropeBaseFromCaches } from '../../bench/support/gguf-phi3.ts';
import { parseOnnx } from '../../src/lib/inference/cpu/onnx-graph.ts';
import { recognisePhi3 } from '../../src/lib/inference/cpu/phi3-graph.ts';
import { halfToFloat, toFloat32 } from '../../src/lib/inference/cpu/weights.ts';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'gguf-test-'));
  dirs.push(d);
  return d;
};

/** MatMulNBits semantics: element 2i in the low nibble of byte i, value (q - 8) * scale. */
function dequantMatMulNBits(packed: Uint8Array, scales: Float32Array, n: number, k: number) {
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++)
    for (let c = 0; c < k; c++) {
      const block = r * (k / 32) + Math.floor(c / 32);
      const byte = packed[block * 16 + ((c % 32) >> 1)]!;
      const q = c % 2 ? byte >> 4 : byte & 15;
      out[r * k + c] = (q - 8) * scales[block]!;
    }
  return out;
}

/** ggml Q4_0 semantics: fp16 d, then element j low and element j + 16 high in qs[j]. */
function dequantQ4_0(bytes: Uint8Array, count: number) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < count / 32; b++) {
    const d = halfToFloat(view.getUint16(b * 18, true));
    for (let j = 0; j < 16; j++) {
      const q = bytes[b * 18 + 2 + j]!;
      out[b * 32 + j] = ((q & 15) - 8) * d;
      out[b * 32 + j + 16] = ((q >> 4) - 8) * d;
    }
  }
  return out;
}

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('MatMulNBits int4 blocks as ggml Q4_0', () => {
  it('keeps every value, nibble extremes and zero scales included', () => {
    const rand = seeded(7);
    const n = 3;
    const k = 96;
    const packed = Uint8Array.from({ length: (n * k) / 2 }, () => Math.floor(rand() * 256));
    packed[0] = 0x0f; // element 0 = 15, element 1 = 0
    packed[17] = 0xf0;
    // fp16-representable scales, so the comparison is exact; one block with scale 0
    const scales = Float32Array.from({ length: (n * k) / 32 }, () =>
      halfToFloat(floatToHalf((rand() - 0.5) * 0.1)),
    );
    scales[4] = 0;
    const q = matMulNBitsToQ4_0(packed, scales, n, k);
    expect(q.length).toBe(((n * k) / 32) * 18);
    expect([...dequantQ4_0(q, n * k)]).toEqual([...dequantMatMulNBits(packed, scales, n, k)]);
  });

  it('rounds fp32 scales to fp16 (the only change), and refuses K that is not whole blocks', () => {
    const packed = new Uint8Array(16).fill(0xff); // all 15: value 7 * scale
    const q = matMulNBitsToQ4_0(packed, Float32Array.of(0.1), 1, 32);
    const got = dequantQ4_0(q, 32);
    expect(got[0]).toBe(7 * halfToFloat(floatToHalf(0.1)));
    expect(Math.abs(got[0]! - 0.7) / 0.7).toBeLessThan(2 ** -11);
    expect(() => matMulNBitsToQ4_0(new Uint8Array(8), Float32Array.of(1), 1, 16)).toThrow(
      /multiple of 32, got 16/,
    );
    expect(() => matMulNBitsToQ4_0(new Uint8Array(15), Float32Array.of(1), 1, 32)).toThrow(
      /holds 15 bytes, expected 16/,
    );
  });
});

describe('fp32 to fp16', () => {
  it('is exact for every finite fp16 value and rounds ties to even', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue; // inf / NaN
      const x = halfToFloat(h);
      const back = floatToHalf(x);
      // +0 and -0 keep their sign bits
      expect(back, `half 0x${h.toString(16)}`).toBe(h);
    }
    // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): even mantissa wins
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds past the largest half: infinity
    expect(floatToHalf(2 ** -25)).toBe(0); // half of the smallest subnormal ties to zero
    expect(floatToHalf(3 * 2 ** -26)).toBe(1);
    expect(floatToHalf(NaN) & 0x7c00).toBe(0x7c00);
  });
});

// ---- a minimal GGUF reader, written from the format description, to read the files back

interface ReadGguf {
  version: number;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  dataStart: number;
  bytes: Uint8Array;
}

function readGguf(bytes: Uint8Array): ReadGguf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const u32r = () => ((at += 4), view.getUint32(at - 4, true));
  const u64r = () => ((at += 8), Number(view.getBigUint64(at - 8, true)));
  const strr = () => {
    const n = u64r();
    at += n;
    return new TextDecoder().decode(bytes.subarray(at - n, at));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case 2:
        return ((at += 2), view.getUint16(at - 2, true));
      case 4:
        return u32r();
      case 5:
        return ((at += 4), view.getInt32(at - 4, true));
      case 6:
        return ((at += 4), view.getFloat32(at - 4, true));
      case 7:
        return bytes[at++] === 1;
      case 8:
        return strr();
      case 9: {
        const t = u32r();
        const n = u64r();
        return Array.from({ length: n }, () => value(t));
      }
      default:
        throw new Error(`type ${type} not expected here`);
    }
  };
  expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
  at = 4;
  const version = u32r();
  const nt = u64r();
  const nkv = u64r();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nkv; i++) {
    const key = strr();
    const type = u32r();
    kv.set(key, { type, value: value(type) });
  }
  const tensors = Array.from({ length: nt }, () => {
    const name = strr();
    const nd = u32r();
    const dims = Array.from({ length: nd }, u64r);
    return { name, dims, type: u32r(), offset: u64r() };
  });
  return { version, kv, tensors, dataStart: Math.ceil(at / 32) * 32, bytes };
}

function tensor(name: string, dims: number[], fill: number): GgufTensor {
  const count = dims.reduce((a, b) => a * b, 1);
  return {
    name,
    dims,
    type: GGML_TYPE.F32,
    data: () => new Uint8Array(new Float32Array(count).fill(fill).buffer),
  };
}

describe('GGUF files', () => {
  const meta = new Map<string, GgufValue>([
    ['general.architecture', str('phi3')],
    ['phi3.block_count', u32(2)],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: ['<unk>', 'a', 'é'] }],
  ]);

  it('read back with typed keys and 32-byte aligned tensor data', () => {
    const prefix = join(tempDir(), 'one');
    const [path] = writeGguf(prefix, meta, [tensor('a', [3], 1.5), tensor('b', [5, 2], -2)]);
    expect(path).toBe(`${prefix}.gguf`);
    const g = readGguf(readFileSync(path!));
    expect(g.version).toBe(3);
    expect(g.kv.get('general.architecture')).toEqual({ type: 8, value: 'phi3' });
    expect(g.kv.get('phi3.block_count')).toEqual({ type: 4, value: 2 });
    expect(g.kv.get('tokenizer.ggml.tokens')!.value).toEqual(['<unk>', 'a', 'é']);
    expect(g.tensors.map((t) => [t.name, t.dims, t.offset])).toEqual([
      ['a', [3], 0],
      ['b', [5, 2], 32],
    ]);
    const f = (t: number, i: number) =>
      new DataView(g.bytes.buffer, g.bytes.byteOffset).getFloat32(
        g.dataStart + g.tensors[t]!.offset + 4 * i,
        true,
      );
    expect(f(0, 2)).toBe(1.5);
    expect(f(1, 9)).toBe(-2);
    expect(g.bytes.length).toBe(g.dataStart + 32 + 40 + 24); // last tensor padded to 32
  });

  it('split as gguf-split does: metadata in the first, split keys with their types in each', () => {
    const prefix = join(tempDir(), 'model');
    const tensors = [tensor('a', [16], 1), tensor('b', [16], 2), tensor('c', [16], 3)];
    const paths = writeGguf(prefix, meta, tensors, 128);
    expect(paths).toEqual([`${prefix}-00001-of-00002.gguf`, `${prefix}-00002-of-00002.gguf`]);
    const [first, second] = paths.map((p) => readGguf(readFileSync(p)));
    expect(first!.kv.get('general.architecture')?.value).toBe('phi3');
    expect(second!.kv.has('general.architecture')).toBe(false);
    for (const [i, g] of [first!, second!].entries()) {
      expect(g.kv.get('split.no')).toEqual({ type: 2, value: i });
      expect(g.kv.get('split.count')).toEqual({ type: 2, value: 2 });
      expect(g.kv.get('split.tensors.count')).toEqual({ type: 5, value: 3 });
    }
    expect(first!.tensors.map((t) => t.name)).toEqual(['a', 'b']);
    expect(second!.tensors.map((t) => [t.name, t.offset])).toEqual([['c', 0]]);
  });
});

describe('the tiny Phi-3 as llama.cpp phi3', () => {
  it('maps the weights onto phi3 tensors with fused QKV and gate+up, and the metadata', async () => {
    const fixture = await ensureTinyPhi3();
    const plan = planPhi3Gguf(fixture.genai);
    try {
      const names = plan.tensors.map((t) => `${t.name} ${t.dims.join('x')} ${t.type}`);
      expect(names.slice(0, 7)).toEqual([
        'token_embd.weight 64x32064 0',
        'blk.0.attn_norm.weight 64 0',
        'blk.0.attn_qkv.weight 64x128 2', // 4 heads + 2 x 2 kv heads, of 16
        'blk.0.attn_output.weight 64x64 2',
        'blk.0.ffn_norm.weight 64 0',
        'blk.0.ffn_up.weight 64x256 2', // gate rows, then up rows
        'blk.0.ffn_down.weight 128x64 2',
      ]);
      expect(names.slice(-2)).toEqual(['output_norm.weight 64 0', 'output.weight 64x32064 2']);
      const v = (k: string) => (plan.metadata.get(k) as { value: unknown }).value;
      expect(v('phi3.block_count')).toBe(2);
      expect(v('phi3.attention.head_count')).toBe(4);
      expect(v('phi3.attention.head_count_kv')).toBe(2);
      expect(v('phi3.rope.dimension_count')).toBe(16);
      expect(v('phi3.rope.freq_base') as number).toBeCloseTo(10000, 0);
      expect(v('tokenizer.ggml.model')).toBe('llama');
      const tokens = v('tokenizer.ggml.tokens') as string[];
      expect(tokens.length).toBe(32064);
      expect([tokens[1], tokens[32007], tokens[32063]]).toEqual(['<s>', '<|end|>', '[PAD32063]']);
      const types = v('tokenizer.ggml.token_type') as Int32Array;
      expect([types[0], types[1], types[32007], types[32063]]).toEqual([2, 3, 3, 5]);

      // The fused up tensor dequantizes to the graph's gate rows followed by its up rows.
      const graph = readFileSync(fixture.genaiModel);
      const g = recognisePhi3(parseOnnx(graph, 'tiny'), 'tiny');
      const data = readFileSync(`${fixture.genaiModel}.data`);
      const raw = (t: (typeof g.layers)[0]['gate']['packed']) => {
        const d = t.data as { kind: 'external'; offset: number; length: number };
        return new Uint8Array(data.buffer, data.byteOffset + d.offset, d.length);
      };
      const want = [g.layers[1]!.gate, g.layers[1]!.up].flatMap((w) => [
        ...dequantMatMulNBits(
          raw(w.packed),
          Float32Array.from(toFloat32(raw(w.scales), w.scales.dataType), (x) =>
            halfToFloat(floatToHalf(x)),
          ),
          w.n,
          w.k,
        ),
      ]);
      const up = plan.tensors.find((t) => t.name === 'blk.1.ffn_up.weight')!;
      expect([...dequantQ4_0(up.data(), 64 * 256)]).toEqual(want);
    } finally {
      plan.close();
    }
  });

  it('refuses rotary caches that no single base explains, naming the position', () => {
    const half = 4;
    const positions = 8;
    const cos = new Float32Array(positions * half);
    const sin = new Float32Array(positions * half);
    for (let p = 0; p < positions; p++)
      for (let i = 0; i < half; i++) {
        const scale = p >= 4 ? 0.5 : 1; // a scaled tail, like a long-context rotary
        const a = p * scale * 10000 ** ((-2 * i) / 8);
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    expect(() => ropeBaseFromCaches(cos, sin, positions, half, 8)).toThrow(
      /position 4, index 0 does not follow base 10000/,
    );
    expect(ropeBaseFromCaches(cos, sin, 4, half, 8)).toBeCloseTo(10000, 0);
  });
});
