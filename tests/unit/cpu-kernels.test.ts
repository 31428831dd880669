// The CPU decoder's wasm kernels against scalar TypeScript references: int4 block-32 matmul with
// int8 and fp32 activations (odd sizes, a last partial block, the int4 extremes, zero scales),
// RMSNorm, both rotary conventions, grouped-query attention over a cache, SiLU-gate.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Arena,
  compileKernels,
  createMemory,
  instantiateKernels,
  type KernelExports,
} from '../../src/lib/inference/cpu/kernels.ts';
import { fileKernelLoader } from '../helpers/cpu-kernels.ts';

let k: KernelExports;
let arena: Arena;

beforeAll(async () => {
  // Node 20's relaxed SIMD is behind a flag (and computes wrong dot products there): plain SIMD128.
  const set = await compileKernels(fileKernelLoader, { shared: false, variant: 'simd' });
  const memory = createMemory(2, false);
  arena = new Arena(memory);
  k = instantiateKernels(set, memory);
});

/** A seeded generator, so a failure reproduces. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function put(data: Float32Array | Uint8Array): number {
  const ptr = arena.alloc(data.byteLength);
  arena.u8(ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return ptr;
}

/** A random int4 weight in the MatMulNBits layout: nibbles [N, ceil(K/32), 16], scales [N * blocks]. */
function randomWeight(r: () => number, n: number, kDim: number, nibble?: (i: number) => number) {
  const nb = Math.ceil(kDim / 32);
  const packed = new Uint8Array(n * nb * 16);
  for (let i = 0; i < packed.length; i++) {
    const lo = nibble ? nibble(2 * i) : Math.floor(r() * 16);
    const hi = nibble ? nibble(2 * i + 1) : Math.floor(r() * 16);
    packed[i] = lo | (hi << 4);
  }
  const scales = Float32Array.from({ length: n * nb }, () => 0.01 + r() * 0.05);
  return { packed, scales, nb };
}

/** W[k, n] as float64: nibble - 8 times the block's scale. */
function dequant(packed: Uint8Array, scales: Float32Array, n: number, kDim: number) {
  const nb = Math.ceil(kDim / 32);
  return (col: number, row: number) => {
    const b = row >> 5;
    const j = row & 31;
    const byte = packed[(col * nb + b) * 16 + (j >> 1)]!;
    const nib = j & 1 ? byte >> 4 : byte & 15;
    return (nib - 8) * scales[col * nb + b]!;
  };
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Reference y[m, n] with the kernel's int8 activation quantisation emulated in float32. */
function refInt8(
  x: Float32Array,
  m: number,
  kDim: number,
  packed: Uint8Array,
  scales: Float32Array,
  n: number,
): Float64Array {
  const nb = Math.ceil(kDim / 32);
  const w = dequant(packed, new Float32Array(scales.length).fill(1), n, kDim);
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    const q = new Int32Array(nb * 32);
    const xs = new Float64Array(nb);
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      for (let i = b * 32; i < Math.min(kDim, b * 32 + 32); i++)
        amax = Math.max(amax, Math.abs(x[r * kDim + i]!));
      const scale = Math.fround(amax / 127);
      const inv = amax !== 0 ? Math.fround(127 / amax) : 0;
      xs[b] = scale;
      for (let i = b * 32; i < Math.min(kDim, b * 32 + 32); i++)
        q[i] = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(x[r * kDim + i]! * inv))));
    }
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        for (let i = b * 32; i < Math.min(kDim, b * 32 + 32); i++) isum += q[i]! * w(c, i);
        acc += isum * Math.fround(scales[c * nb + b]! * xs[b]!);
      }
      out[r * n + c] = acc;
    }
  }
  return out;
}

function refF64(
  x: Float32Array,
  m: number,
  kDim: number,
  packed: Uint8Array,
  scales: Float32Array,
  n: number,
): Float64Array {
  const w = dequant(packed, scales, n, kDim);
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let i = 0; i < kDim; i++) acc += x[r * kDim + i]! * w(c, i);
      out[r * n + c] = acc;
    }
  return out;
}

/** Runs both matmul paths; returns [int8 result, fp32 result] as [m, n]. */
function runMatmul(
  x: Float32Array,
  m: number,
  kDim: number,
  packed: Uint8Array,
  scales: Float32Array,
  n: number,
): [Float32Array, Float32Array] {
  const nb = Math.ceil(kDim / 32);
  const qb = k.activationBlockBytes();
  const px = put(x);
  const pw = put(packed);
  const ps = put(scales);
  const xq = arena.alloc(m * nb * qb);
  const xs = arena.alloc(m * nb * 4);
  const xc = arena.alloc(m * nb * 4);
  const xf = arena.alloc(m * nb * 128);
  const o1 = arena.alloc(m * n * 4);
  const o2 = arena.alloc(m * n * 4);
  k.quantizeRows(px, m, kDim, xq, xs, xc);
  // In two row ranges, as threads split them.
  const mid = Math.floor(n / 2);
  k.matmulQ4(pw, ps, xq, xs, xc, m, nb, 0, mid, o1, n);
  k.matmulQ4(pw, ps, xq, xs, xc, m, nb, mid, n, o1, n);
  k.deinterleaveRows(px, m, kDim, xf);
  k.matmulQ4F32(pw, ps, xf, m, nb, 0, n, o2, n);
  return [arena.f32(o1, m * n).slice(), arena.f32(o2, m * n).slice()];
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++)
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol);
}

describe('int4 block-32 matmul', () => {
  const shapes: [m: number, kDim: number, n: number][] = [
    [1, 32, 1],
    [1, 64, 7],
    [1, 40, 5], // one full block and a partial one
    [1, 8, 3], // only a partial block
    [3, 96, 33],
    [2, 1000, 17], // K not a multiple of 32, odd N
    [1, 3072, 9],
    // Rows in pairs and an odd one left; groups of four blocks and blocks after the last group.
    [5, 200, 11],
    [4, 520, 6],
    [2, 136, 3],
  ];
  for (const [m, kDim, n] of shapes) {
    it(`matches the scalar references for m=${m} K=${kDim} N=${n}`, () => {
      const r = rng(kDim * 131 + n * 7 + m);
      const { packed, scales } = randomWeight(r, n, kDim);
      const x = Float32Array.from({ length: m * kDim }, () => (r() * 2 - 1) * 3);
      const [int8, f32] = runMatmul(x, m, kDim, packed, scales, n);
      const exact = refInt8(x, m, kDim, packed, scales, n);
      const full = refF64(x, m, kDim, packed, scales, n);
      // Integer dots are exact; only the float sum over blocks is reordered.
      const mag = Math.max(...full.map(Math.abs), 1);
      expectClose(int8, exact, 1e-5 * mag);
      expectClose(f32, full, 1e-5 * mag);
      // int8 activations: at most half a step of amax/127 per element.
      expectClose(int8, full, 0.02 * mag);
    });
  }

  it('handles the int4 extremes -8 and 7 and extreme activations', () => {
    for (const nib of [0, 15]) {
      const kDim = 70;
      const n = 3;
      const r = rng(nib + 1);
      const { packed, scales } = randomWeight(r, n, kDim, () => nib);
      const x = Float32Array.from({ length: kDim }, (_, i) => (i % 3 ? 1e4 : -1e4));
      const [int8, f32] = runMatmul(x, 1, kDim, packed, scales, n);
      const full = refF64(x, 1, kDim, packed, scales, n);
      const mag = Math.max(...full.map(Math.abs), 1);
      expectClose(f32, full, 1e-5 * mag);
      // +-1e4 quantise exactly to +-127: the int8 path is exact too.
      expectClose(int8, full, 1e-5 * mag);
      expect(Math.abs(full[0]!)).toBeGreaterThan(0);
    }
  });

  it('gives zeros for zero scales and for zero activations', () => {
    const kDim = 64;
    const n = 5;
    const r = rng(9);
    const { packed } = randomWeight(r, n, kDim);
    const x = Float32Array.from({ length: kDim }, () => r() - 0.5);
    const [a, b] = runMatmul(x, 1, kDim, packed, new Float32Array(n * 2), n);
    expect([...a, ...b].every((v) => v === 0)).toBe(true);
    const { scales } = randomWeight(r, n, kDim);
    const [c, d] = runMatmul(new Float32Array(kDim), 1, kDim, packed, scales, n);
    expect([...c, ...d].every((v) => v === 0)).toBe(true);
  });
});

describe('norms, rotary, attention, MLP', () => {
  it('RMSNorm and the skip variant match the definition', () => {
    const n = 37;
    const m = 2;
    const r = rng(4);
    const x = Float32Array.from({ length: m * n }, () => r() * 4 - 2);
    const d = Float32Array.from({ length: m * n }, () => r() - 0.5);
    const w = Float32Array.from({ length: n }, () => 0.5 + r());
    const eps = 1e-5;
    const ref = (v: Float32Array) => {
      const out = new Float64Array(m * n);
      for (let row = 0; row < m; row++) {
        let ss = 0;
        for (let i = 0; i < n; i++) ss += v[row * n + i]! ** 2;
        const inv = 1 / Math.sqrt(ss / n + eps);
        for (let i = 0; i < n; i++) out[row * n + i] = v[row * n + i]! * inv * w[i]!;
      }
      return out;
    };
    const px = put(x);
    const pw = put(w);
    const out = arena.alloc(m * n * 4);
    k.rmsNorm(px, pw, out, m, n, eps);
    expectClose(arena.f32(out, m * n), ref(x), 1e-5);
    const pd = put(d);
    k.addRmsNorm(px, pd, pw, out, m, n, eps);
    const sum = x.map((v, i) => v + d[i]!);
    expectClose(arena.f32(px, m * n), sum, 1e-6);
    expectClose(arena.f32(out, m * n), ref(sum), 1e-5);
  });

  for (const interleaved of [0, 1]) {
    it(`rotary embedding, ${interleaved ? 'interleaved' : 'rotate-half'} pairs`, () => {
      const heads = 3;
      const hs = 16;
      const half = hs / 2;
      const m = 2;
      const rowStride = heads * hs + 5; // rows may sit inside a wider (packed QKV) row
      const pos0 = 7;
      const positions = 20;
      const cos = new Float32Array(positions * half);
      const sin = new Float32Array(positions * half);
      for (let p = 0; p < positions; p++)
        for (let i = 0; i < half; i++) {
          const a = p / 10000 ** ((2 * i) / hs);
          cos[p * half + i] = Math.cos(a);
          sin[p * half + i] = Math.sin(a);
        }
      const r = rng(11 + interleaved);
      const x = Float32Array.from({ length: m * rowStride }, () => r() * 2 - 1);
      const expected = Float64Array.from(x);
      for (let row = 0; row < m; row++)
        for (let h = 0; h < heads; h++)
          for (let i = 0; i < half; i++) {
            const base = row * rowStride + h * hs;
            const [a, b] = interleaved
              ? [base + 2 * i, base + 2 * i + 1]
              : [base + i, base + i + half];
            const c = cos[(pos0 + row) * half + i]!;
            const s = sin[(pos0 + row) * half + i]!;
            expected[a] = x[a]! * c - x[b]! * s;
            expected[b] = x[b]! * c + x[a]! * s;
          }
      const px = put(x);
      k.rotary(px, m, rowStride, heads, hs, hs, pos0, put(cos), put(sin), interleaved);
      expectClose(arena.f32(px, m * rowStride), expected, 1e-6);
    });
  }

  it('grouped-query attention over the cache, causal within the new rows', () => {
    const heads = 4;
    const kvHeads = 2;
    const hs = 12;
    const cap = 10;
    const past = 3;
    const m = 2;
    const r = rng(21);
    const q = Float32Array.from({ length: m * heads * hs }, () => r() * 2 - 1);
    const kc = Float32Array.from({ length: kvHeads * cap * hs }, () => r() * 2 - 1);
    const vc = Float32Array.from({ length: kvHeads * cap * hs }, () => r() * 2 - 1);
    const scale = 1 / Math.sqrt(hs);
    const expected = new Float64Array(m * heads * hs);
    for (let row = 0; row < m; row++)
      for (let h = 0; h < heads; h++) {
        const kv = Math.floor(h / (heads / kvHeads));
        const total = past + row + 1;
        const s: number[] = [];
        for (let t = 0; t < total; t++) {
          let d = 0;
          for (let i = 0; i < hs; i++)
            d += q[row * heads * hs + h * hs + i]! * kc[(kv * cap + t) * hs + i]!;
          s.push(d * scale);
        }
        const mx = Math.max(...s);
        const e = s.map((v) => Math.exp(v - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < total; t++)
          for (let i = 0; i < hs; i++)
            expected[row * heads * hs + h * hs + i]! += (e[t]! / z) * vc[(kv * cap + t) * hs + i]!;
      }
    const out = arena.alloc(m * heads * hs * 4);
    const scratch = arena.alloc(cap * 4);
    const [pq, pk, pv] = [put(q), put(kc), put(vc)];
    // Heads in two ranges, as threads split them.
    k.attention(
      pq,
      heads * hs,
      pk,
      pv,
      out,
      m,
      past,
      heads,
      kvHeads,
      hs,
      cap,
      scale,
      0,
      1,
      scratch,
      0,
    );
    k.attention(
      pq,
      heads * hs,
      pk,
      pv,
      out,
      m,
      past,
      heads,
      kvHeads,
      hs,
      cap,
      scale,
      1,
      heads,
      scratch,
      0,
    );
    expectClose(arena.f32(out, m * heads * hs), expected, 1e-5);
  });

  it('SiLU gate times up', () => {
    const n = 11;
    const r = rng(5);
    const g = Float32Array.from({ length: n }, () => r() * 20 - 10);
    const u = Float32Array.from({ length: n }, () => r() * 2 - 1);
    const out = arena.alloc(n * 4);
    k.siluMul(put(g), put(u), out, n);
    const expected = Array.from(g, (v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
    expectClose(arena.f32(out, n), expected, 1e-5);
  });
});

/** fp16 bits to a number (the test's own decoder). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('fp16 KV cache', () => {
  function toHalf(values: Float32Array): Uint16Array {
    const src = put(values);
    const dst = arena.alloc(values.length * 2);
    k.toHalf(src, dst, values.length);
    return new Uint16Array(arena.memory.buffer, dst, values.length).slice();
  }
  function fromHalf(bits: Uint16Array): Float32Array {
    const src = arena.alloc(bits.length * 2);
    new Uint16Array(arena.memory.buffer, src, bits.length).set(bits);
    const dst = arena.alloc(bits.length * 4);
    k.fromHalf(src, dst, bits.length);
    return arena.f32(dst, bits.length).slice();
  }

  it('decodes every finite fp16 value exactly and encodes it back to the same bits', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i).filter(
      (h) => (h & 0x7c00) !== 0x7c00,
    );
    // An odd count, so the 8-wide loop leaves a scalar tail.
    const bits = all.subarray(0, all.length - 3);
    const values = fromHalf(bits);
    for (let i = 0; i < bits.length; i++) {
      if (values[i] !== Math.fround(halfValue(bits[i]!))) {
        expect.fail(`0x${bits[i]!.toString(16)}: ${values[i]} vs ${halfValue(bits[i]!)}`);
      }
    }
    const back = toHalf(values);
    for (let i = 0; i < bits.length; i++) {
      // -0 and +0 both stay themselves
      if (back[i] !== bits[i]) expect.fail(`0x${bits[i]!.toString(16)} came back as ${back[i]}`);
    }
  });

  it('rounds to the nearest fp16, ties to even, subnormals included; clamps instead of overflowing', () => {
    const r = rng(77);
    const values: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const mag = 2 ** (Math.floor(r() * 44) - 28); // subnormal fp16 up to 2^15
      values.push(Math.fround((r() < 0.5 ? -1 : 1) * mag * (1 + r())));
    }
    // Exact midpoints between neighbours: 1 + 2^-11 (to 1, even), 1 + 3 * 2^-11 (to 1 + 2^-9),
    // a subnormal midpoint 2.5 * 2^-24 (to 2 * 2^-24), and values beyond 65504.
    values.push(1 + 2 ** -11, 1 + 3 * 2 ** -11, 2.5 * 2 ** -24, 65519, 65520, 1e9, -3e38);
    const x = Float32Array.from(values);
    const got = toHalf(x);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const h = halfValue(got[i]!);
      if (Math.abs(v) >= 65520) {
        expect(h, `${v}`).toBe(Math.sign(v) * 65504);
        continue;
      }
      // No other fp16 is nearer; on a tie the chosen one has an even mantissa.
      const up = halfValue(got[i]! + 1);
      const down = halfValue(got[i]! - 1);
      const err = Math.abs(h - v);
      const bad =
        err > Math.abs(up - v) ||
        ((got[i]! & 0x3ff) !== 0 && err > Math.abs(down - v)) ||
        (err === Math.abs(up - v) && got[i]! & 1);
      if (bad) expect.fail(`${v} -> ${h} (0x${got[i]!.toString(16)})`);
    }
    expect(halfValue(got[x.length - 7]!)).toBe(1);
    expect(halfValue(got[x.length - 6]!)).toBe(1 + 2 ** -9);
    expect(halfValue(got[x.length - 5]!)).toBe(2 * 2 ** -24);
    expect(halfValue(got[x.length - 4]!)).toBe(65504);
  });

  it('cacheRows writes each row head to its position in fp32 and fp16', () => {
    const m = 3;
    const heads = 2;
    const hs = 13;
    const stride = 40; // the KV heads sit inside wider rows
    const cap = 7;
    const pos0 = 4;
    const r = rng(3);
    const rows = Float32Array.from({ length: m * stride }, () => r() * 8 - 4);
    const src = put(rows);
    const c32 = arena.alloc(heads * cap * hs * 4);
    const c16 = arena.alloc(heads * cap * hs * 2);
    k.cacheRows(src + 5 * 4, m, stride, heads, hs, c32, cap, pos0, 0);
    k.cacheRows(src + 5 * 4, m, stride, heads, hs, c16, cap, pos0, 1);
    const f32 = arena.f32(c32, heads * cap * hs);
    const f16 = new Uint16Array(arena.memory.buffer, c16, heads * cap * hs);
    for (let row = 0; row < m; row++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hs; i++) {
          const v = rows[row * stride + 5 + h * hs + i]!;
          const at = (h * cap + pos0 + row) * hs + i;
          expect(f32[at]).toBe(v);
          expect(Math.abs(halfValue(f16[at]!) - v)).toBeLessThanOrEqual(2 ** -11 * Math.abs(v));
        }
  });

  for (const hs of [12, 20, 96]) {
    it(`attention over fp16 caches equals attention over the same values in fp32 (head size ${hs})`, () => {
      const heads = 4;
      const kvHeads = 2;
      const cap = 9;
      const past = 5;
      const m = 3;
      const r = rng(hs);
      const q = Float32Array.from({ length: m * heads * hs }, () => r() * 2 - 1);
      // Values that fp16 holds exactly, so both caches hold the same numbers.
      const kc = Float32Array.from(
        { length: kvHeads * cap * hs },
        () => Math.round((r() * 2 - 1) * 1024) / 256,
      );
      const vc = Float32Array.from(
        { length: kvHeads * cap * hs },
        () => Math.round((r() * 2 - 1) * 1024) / 512,
      );
      const k16 = arena.alloc(kc.length * 2);
      const v16 = arena.alloc(vc.length * 2);
      k.toHalf(put(kc), k16, kc.length);
      k.toHalf(put(vc), v16, vc.length);
      const [pq, pk, pv] = [put(q), put(kc), put(vc)];
      const o32 = arena.alloc(m * heads * hs * 4);
      const o16 = arena.alloc(m * heads * hs * 4);
      const scratch = arena.alloc(cap * 4);
      const scale = 1 / Math.sqrt(hs);
      k.attention(
        pq,
        heads * hs,
        pk,
        pv,
        o32,
        m,
        past,
        heads,
        kvHeads,
        hs,
        cap,
        scale,
        0,
        heads,
        scratch,
        0,
      );
      k.attention(
        pq,
        heads * hs,
        k16,
        v16,
        o16,
        m,
        past,
        heads,
        kvHeads,
        hs,
        cap,
        scale,
        0,
        1,
        scratch,
        1,
      );
      k.attention(
        pq,
        heads * hs,
        k16,
        v16,
        o16,
        m,
        past,
        heads,
        kvHeads,
        hs,
        cap,
        scale,
        1,
        heads,
        scratch,
        1,
      );
      expectClose(arena.f32(o16, m * heads * hs), arena.f32(o32, m * heads * hs), 1e-5);
    });
  }
});
