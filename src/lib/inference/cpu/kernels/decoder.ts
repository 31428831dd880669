// @ts-nocheck -- AssemblyScript, not TypeScript: compiled to wasm by scripts/build-kernels.mjs.
//
// Kernels of the CPU decoder. Every argument is a byte address in the one imported memory (the
// JS side owns allocation; this module has no heap and no static data) or a plain number.
// Built twice from this one source: SIMD128 (`decoder-simd.wasm`) and relaxed SIMD
// (`decoder-relaxed.wasm`); ASC_FEATURE_RELAXED_SIMD picks the block dot product at compile time.
//
// Weights stay in onnxruntime's MatMulNBits layout (4 bits, block 32, symmetric): for output
// row n, block b, byte j holds element 2j in its low nibble and 2j+1 in its high nibble, stored
// as nibble + 8; one fp32 scale per (n, b). Activations are quantised per block of 32 to int8
// with scale amax / 127 (as onnxruntime's accuracy level 4 does), stored de-interleaved (the 16
// even elements, then the 16 odd ones) so that they line up with the low and high nibbles.

/**
 * Bytes per block of quantised activations (even elements, then odd ones): int8 for relaxed
 * SIMD's dot, int16 lanes for SIMD128's i32x4.dot_i16x8_s (measured in Chromium: the int8
 * extmul form of the SIMD128 dot ran 3-5x slower than widening the nibbles and using the i16 dot).
 */
const QB: i32 = ASC_FEATURE_RELAXED_SIMD ? 32 : 64;

export function activationBlockBytes(): i32 {
  return QB;
}

export function isRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

/**
 * Quantises `m` rows of `k` floats (row stride `k`) into blocks of 32: `xq` (QB bytes per block),
 * `xs` (f32 scale per block) and `xc` (i32 per block: -8 * the sum of the block's int8 values,
 * which folds the weights' zero point of 8 into the dot product). A last partial block is
 * padded with zeros, so whatever the padding nibbles hold contributes nothing.
 */
export function quantizeRows(x: usize, m: i32, k: i32, xq: usize, xs: usize, xc: usize): void {
  const nb = (k + 31) >> 5;
  for (let r = 0; r < m; r++) {
    const row = x + <usize>(r * k) * 4;
    for (let b = 0; b < nb; b++) {
      const base = b << 5;
      const len = min(32, k - base);
      let amax: f32 = 0;
      for (let i = 0; i < len; i++) {
        const v = abs<f32>(load<f32>(row + <usize>(base + i) * 4));
        if (v > amax) amax = v;
      }
      const scale: f32 = amax / 127;
      // 127 / amax rather than 1 / scale, as onnxruntime (MLAS) computes it: the two differ in the
      // last bit for some amax, which moves values that sit on a rounding boundary.
      const inv: f32 = amax != 0 ? <f32>127 / amax : 0;
      const blk = r * nb + b;
      const out = xq + <usize>blk * QB;
      let sum: i32 = 0;
      for (let i = 0; i < 32; i++) {
        let q: i32 = 0;
        if (i < len) {
          q = <i32>nearest<f32>(load<f32>(row + <usize>(base + i) * 4) * inv);
          if (q > 127) q = 127;
          if (q < -127) q = -127;
        }
        sum += q;
        // even elements first, then odd ones
        const slot = (i & 1) * 16 + (i >> 1);
        if (ASC_FEATURE_RELAXED_SIMD) store<i8>(out + <usize>slot, <i8>q);
        else store<i16>(out + <usize>slot * 2, <i16>q);
      }
      store<f32>(xs + <usize>blk * 4, scale);
      store<i32>(xc + <usize>blk * 4, -8 * sum);
    }
  }
}

function hsum(v: v128): f32 {
  return (
    f32x4.extract_lane(v, 0) +
    f32x4.extract_lane(v, 1) +
    (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
  );
}

/**
 * The integer dot product of one weight block (its nibbles 0..15 split into `lo`, the even
 * elements, and `hi`, the odd ones) with one block of activations at `px`, as four partial
 * sums in the lanes of an i32x4 (their total is the block's dot product).
 */
function blockDot(lo: v128, hi: v128, px: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    // The nibbles are the 7-bit operand, so the result is the same on every CPU.
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(
      v128.load(px, 16),
      hi,
      i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(px), lo, i32x4.splat(0)),
    );
  }
  const a = i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.load(px)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.load(px, 16)),
  );
  const b = i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.load(px, 32)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.load(px, 48)),
  );
  return i32x4.add(a, b);
}

/** Four blocks' partial sums (lanes of a, b, c, d) to [sum a, sum b, sum c, sum d]. */
function sum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** The integer dot of one block as a scalar, for the blocks after the last group of four. */
function blockDotScalar(bytes: v128, px: usize, mask: v128): i32 {
  const d = blockDot(v128.and(bytes, mask), i8x16.shr_u(bytes, 4), px);
  return (
    i32x4.extract_lane(d, 0) +
    i32x4.extract_lane(d, 1) +
    i32x4.extract_lane(d, 2) +
    i32x4.extract_lane(d, 3)
  );
}

/** The dot of one group of four unpacked weight blocks with four activation blocks at px. */
function group4(
  l0: v128,
  h0: v128,
  l1: v128,
  h1: v128,
  l2: v128,
  h2: v128,
  l3: v128,
  h3: v128,
  px: usize,
): v128 {
  return sum4(
    blockDot(l0, h0, px),
    blockDot(l1, h1, px + QB),
    blockDot(l2, h2, px + 2 * QB),
    blockDot(l3, h3, px + 3 * QB),
  );
}

/** Activation rows r..r+3 against weight row n: each unpacked weight block serves four rows. */
function quad(
  wrow: usize,
  srow: usize,
  xq: usize,
  xs: usize,
  xc: usize,
  nb: i32,
  r: i32,
  n: i32,
  out: usize,
  outStride: i32,
): void {
  const mask = i8x16.splat(0x0f);
  const nb4 = nb & ~3;
  const xRow = <usize>nb * QB;
  const nbx = <usize>nb * 4;
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let acc2 = f32x4.splat(0);
  let acc3 = f32x4.splat(0);
  let pw = wrow;
  let ps = srow;
  const first = <usize>(r * nb);
  let px = xq + first * QB;
  let pxs = xs + first * 4;
  let pxc = xc + first * 4;
  for (let b = 0; b < nb4; b += 4) {
    const w0 = v128.load(pw);
    const w1 = v128.load(pw, 16);
    const w2 = v128.load(pw, 32);
    const w3 = v128.load(pw, 48);
    const l0 = v128.and(w0, mask);
    const h0 = i8x16.shr_u(w0, 4);
    const l1 = v128.and(w1, mask);
    const h1 = i8x16.shr_u(w1, 4);
    const l2 = v128.and(w2, mask);
    const h2 = i8x16.shr_u(w2, 4);
    const l3 = v128.and(w3, mask);
    const h3 = i8x16.shr_u(w3, 4);
    const sw = v128.load(ps);
    acc0 = fma(
      f32x4.convert_i32x4_s(i32x4.add(group4(l0, h0, l1, h1, l2, h2, l3, h3, px), v128.load(pxc))),
      f32x4.mul(sw, v128.load(pxs)),
      acc0,
    );
    acc1 = fma(
      f32x4.convert_i32x4_s(
        i32x4.add(group4(l0, h0, l1, h1, l2, h2, l3, h3, px + xRow), v128.load(pxc + nbx)),
      ),
      f32x4.mul(sw, v128.load(pxs + nbx)),
      acc1,
    );
    acc2 = fma(
      f32x4.convert_i32x4_s(
        i32x4.add(group4(l0, h0, l1, h1, l2, h2, l3, h3, px + 2 * xRow), v128.load(pxc + 2 * nbx)),
      ),
      f32x4.mul(sw, v128.load(pxs + 2 * nbx)),
      acc2,
    );
    acc3 = fma(
      f32x4.convert_i32x4_s(
        i32x4.add(group4(l0, h0, l1, h1, l2, h2, l3, h3, px + 3 * xRow), v128.load(pxc + 3 * nbx)),
      ),
      f32x4.mul(sw, v128.load(pxs + 3 * nbx)),
      acc3,
    );
    pw += 64;
    ps += 16;
    px += 4 * QB;
    pxs += 16;
    pxc += 16;
  }
  let t0 = hsum(acc0);
  let t1 = hsum(acc1);
  let t2 = hsum(acc2);
  let t3 = hsum(acc3);
  for (let b = nb4; b < nb; b++) {
    const bytes = v128.load(pw);
    const s = load<f32>(ps);
    t0 += <f32>(blockDotScalar(bytes, px, mask) + load<i32>(pxc)) * (s * load<f32>(pxs));
    t1 +=
      <f32>(blockDotScalar(bytes, px + xRow, mask) + load<i32>(pxc + nbx)) *
      (s * load<f32>(pxs + nbx));
    t2 +=
      <f32>(blockDotScalar(bytes, px + 2 * xRow, mask) + load<i32>(pxc + 2 * nbx)) *
      (s * load<f32>(pxs + 2 * nbx));
    t3 +=
      <f32>(blockDotScalar(bytes, px + 3 * xRow, mask) + load<i32>(pxc + 3 * nbx)) *
      (s * load<f32>(pxs + 3 * nbx));
    pw += 16;
    ps += 4;
    px += QB;
    pxs += 4;
    pxc += 4;
  }
  const o = out + <usize>(r * outStride + n) * 4;
  const step = <usize>outStride * 4;
  store<f32>(o, t0);
  store<f32>(o + step, t1);
  store<f32>(o + 2 * step, t2);
  store<f32>(o + 3 * step, t3);
}

/**
 * out[r * outStride + n] = sum_k x[r, k] * W[k, n] for rows n in [n0, n1) and the `m` quantised
 * activation rows. `nb` is the number of blocks per weight row, ceil(K / 32). Blocks go in
 * groups of four: their integer sums land in the lanes of one vector, so the conversion to float
 * and the scaling happen once per four blocks. Activation rows go in pairs (prefill), sharing
 * each unpacked weight block.
 */
export function matmulQ4(
  w: usize,
  ws: usize,
  xq: usize,
  xs: usize,
  xc: usize,
  m: i32,
  nb: i32,
  n0: i32,
  n1: i32,
  out: usize,
  outStride: i32,
): void {
  const mask = i8x16.splat(0x0f);
  const nb4 = nb & ~3;
  const xRow = <usize>nb * QB;
  for (let n = n0; n < n1; n++) {
    const wrow = w + <usize>n * <usize>nb * 16;
    const srow = ws + <usize>n * <usize>nb * 4;
    let r = 0;
    if (ASC_FEATURE_RELAXED_SIMD) {
      // Rows in fours (prefill) share each unpacked weight group. Relaxed SIMD only: in
      // Chromium the SIMD128 build measured slower this way (0.68-0.80x), relaxed faster.
      for (; r + 4 <= m; r += 4) quad(wrow, srow, xq, xs, xc, nb, r, n, out, outStride);
    }
    for (; r + 2 <= m; r += 2) {
      let acc0 = f32x4.splat(0);
      let acc1 = f32x4.splat(0);
      let pw = wrow;
      let ps = srow;
      const first = <usize>(r * nb);
      let px = xq + first * QB;
      let pxs = xs + first * 4;
      let pxc = xc + first * 4;
      const nbx = <usize>nb * 4;
      for (let b = 0; b < nb4; b += 4) {
        const w0 = v128.load(pw);
        const w1 = v128.load(pw, 16);
        const w2 = v128.load(pw, 32);
        const w3 = v128.load(pw, 48);
        const l0 = v128.and(w0, mask);
        const h0 = i8x16.shr_u(w0, 4);
        const l1 = v128.and(w1, mask);
        const h1 = i8x16.shr_u(w1, 4);
        const l2 = v128.and(w2, mask);
        const h2 = i8x16.shr_u(w2, 4);
        const l3 = v128.and(w3, mask);
        const h3 = i8x16.shr_u(w3, 4);
        const sw = v128.load(ps);
        const d0 = sum4(
          blockDot(l0, h0, px),
          blockDot(l1, h1, px + QB),
          blockDot(l2, h2, px + 2 * QB),
          blockDot(l3, h3, px + 3 * QB),
        );
        acc0 = fma(
          f32x4.convert_i32x4_s(i32x4.add(d0, v128.load(pxc))),
          f32x4.mul(sw, v128.load(pxs)),
          acc0,
        );
        const py = px + xRow;
        const d1 = sum4(
          blockDot(l0, h0, py),
          blockDot(l1, h1, py + QB),
          blockDot(l2, h2, py + 2 * QB),
          blockDot(l3, h3, py + 3 * QB),
        );
        acc1 = fma(
          f32x4.convert_i32x4_s(i32x4.add(d1, v128.load(pxc + nbx))),
          f32x4.mul(sw, v128.load(pxs + nbx)),
          acc1,
        );
        pw += 64;
        ps += 16;
        px += 4 * QB;
        pxs += 16;
        pxc += 16;
      }
      let t0 = hsum(acc0);
      let t1 = hsum(acc1);
      for (let b = nb4; b < nb; b++) {
        const bytes = v128.load(pw);
        const s = load<f32>(ps);
        t0 += <f32>(blockDotScalar(bytes, px, mask) + load<i32>(pxc)) * (s * load<f32>(pxs));
        t1 +=
          <f32>(blockDotScalar(bytes, px + xRow, mask) + load<i32>(pxc + nbx)) *
          (s * load<f32>(pxs + nbx));
        pw += 16;
        ps += 4;
        px += QB;
        pxs += 4;
        pxc += 4;
      }
      store<f32>(out + <usize>(r * outStride + n) * 4, t0);
      store<f32>(out + <usize>((r + 1) * outStride + n) * 4, t1);
    }
    if (r < m && !ASC_FEATURE_RELAXED_SIMD) {
      // SIMD128, one row (decode): block by block measured faster in Chromium than in groups.
      let acc = f32x4.splat(0);
      let pw = wrow;
      let ps = srow;
      const first = <usize>(r * nb);
      let px = xq + first * QB;
      let pxs = xs + first * 4;
      let pxc = xc + first * 4;
      for (let b = 0; b < nb; b++) {
        const bytes = v128.load(pw);
        const isum = i32x4.add(
          i32x4.replace_lane(i32x4.splat(0), 0, load<i32>(pxc)),
          blockDot(v128.and(bytes, mask), i8x16.shr_u(bytes, 4), px),
        );
        const sc = load<f32>(ps) * load<f32>(pxs);
        acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(sc)));
        pw += 16;
        ps += 4;
        px += QB;
        pxs += 4;
        pxc += 4;
      }
      store<f32>(out + <usize>(r * outStride + n) * 4, hsum(acc));
    } else if (r < m) {
      let acc = f32x4.splat(0);
      let pw = wrow;
      let ps = srow;
      const first = <usize>(r * nb);
      let px = xq + first * QB;
      let pxs = xs + first * 4;
      let pxc = xc + first * 4;
      for (let b = 0; b < nb4; b += 4) {
        const w0 = v128.load(pw);
        const w1 = v128.load(pw, 16);
        const w2 = v128.load(pw, 32);
        const w3 = v128.load(pw, 48);
        const d = sum4(
          blockDot(v128.and(w0, mask), i8x16.shr_u(w0, 4), px),
          blockDot(v128.and(w1, mask), i8x16.shr_u(w1, 4), px + QB),
          blockDot(v128.and(w2, mask), i8x16.shr_u(w2, 4), px + 2 * QB),
          blockDot(v128.and(w3, mask), i8x16.shr_u(w3, 4), px + 3 * QB),
        );
        acc = fma(
          f32x4.convert_i32x4_s(i32x4.add(d, v128.load(pxc))),
          f32x4.mul(v128.load(ps), v128.load(pxs)),
          acc,
        );
        pw += 64;
        ps += 16;
        px += 4 * QB;
        pxs += 16;
        pxc += 16;
      }
      let t = hsum(acc);
      for (let b = nb4; b < nb; b++) {
        t +=
          <f32>(blockDotScalar(v128.load(pw), px, mask) + load<i32>(pxc)) *
          (load<f32>(ps) * load<f32>(pxs));
        pw += 16;
        ps += 4;
        px += QB;
        pxs += 4;
        pxc += 4;
      }
      store<f32>(out + <usize>(r * outStride + n) * 4, t);
    }
  }
}

/**
 * Lays `m` rows of `k` floats out as 32-float blocks, even elements then odd ones, zero-padded:
 * the input of matmulQ4F32, the full-precision path used to verify the int8 one.
 */
export function deinterleaveRows(x: usize, m: i32, k: i32, xf: usize): void {
  const nb = (k + 31) >> 5;
  for (let r = 0; r < m; r++) {
    const row = x + <usize>(r * k) * 4;
    for (let b = 0; b < nb; b++) {
      const out = xf + <usize>(r * nb + b) * 128;
      for (let i = 0; i < 32; i++) {
        const e = (b << 5) + i;
        const v: f32 = e < k ? load<f32>(row + <usize>e * 4) : 0;
        store<f32>(out + <usize>((i & 1) * 16 + (i >> 1)) * 4, v);
      }
    }
  }
}

/** matmulQ4 with fp32 activations (from deinterleaveRows) and dequantisation in registers. */
export function matmulQ4F32(
  w: usize,
  ws: usize,
  xf: usize,
  m: i32,
  nb: i32,
  n0: i32,
  n1: i32,
  out: usize,
  outStride: i32,
): void {
  const mask = i8x16.splat(0x0f);
  const eight = i8x16.splat(8);
  for (let n = n0; n < n1; n++) {
    const wrow = w + <usize>n * <usize>nb * 16;
    const srow = ws + <usize>n * <usize>nb * 4;
    for (let r = 0; r < m; r++) {
      let acc = f32x4.splat(0);
      let px = xf + <usize>(r * nb) * 128;
      for (let b = 0; b < nb; b++) {
        const bytes = v128.load(wrow + <usize>b * 16);
        const lo = i8x16.sub(v128.and(bytes, mask), eight);
        const hi = i8x16.sub(i8x16.shr_u(bytes, 4), eight);
        const l0 = i16x8.extend_low_i8x16_s(lo);
        const l1 = i16x8.extend_high_i8x16_s(lo);
        const h0 = i16x8.extend_low_i8x16_s(hi);
        const h1 = i16x8.extend_high_i8x16_s(hi);
        let part = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l0)), v128.load(px));
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l0)), v128.load(px, 16)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l1)), v128.load(px, 32)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l1)), v128.load(px, 48)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h0)), v128.load(px, 64)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h0)), v128.load(px, 80)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h1)), v128.load(px, 96)),
        );
        part = f32x4.add(
          part,
          f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h1)), v128.load(px, 112)),
        );
        acc = f32x4.add(acc, f32x4.mul(part, f32x4.splat(load<f32>(srow + <usize>b * 4))));
        px += 128;
      }
      store<f32>(out + <usize>(r * outStride + n) * 4, hsum(acc));
    }
  }
}

function sumSquares(x: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + <usize>i * 4);
    acc = f32x4.add(acc, f32x4.mul(v, v));
  }
  let s = hsum(acc);
  for (; i < n; i++) {
    const v = load<f32>(x + <usize>i * 4);
    s += v * v;
  }
  return s;
}

/** RMSNorm of `m` rows of `n`: out = x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: usize, weight: usize, out: usize, m: i32, n: i32, eps: f32): void {
  for (let r = 0; r < m; r++) {
    const row = x + <usize>(r * n) * 4;
    const dst = out + <usize>(r * n) * 4;
    const inv = <f32>1 / sqrt<f32>(sumSquares(row, n) / <f32>n + eps);
    const vinv = f32x4.splat(inv);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i * 4;
      v128.store(dst + o, f32x4.mul(f32x4.mul(v128.load(row + o), vinv), v128.load(weight + o)));
    }
    for (; i < n; i++) {
      const o = <usize>i * 4;
      store<f32>(dst + o, load<f32>(row + o) * inv * load<f32>(weight + o));
    }
  }
}

/** residual += delta, then out = RMSNorm(residual) (SkipSimplifiedLayerNormalization). */
export function addRmsNorm(
  residual: usize,
  delta: usize,
  weight: usize,
  out: usize,
  m: i32,
  n: i32,
  eps: f32,
): void {
  const total = m * n;
  let i = 0;
  for (; i + 4 <= total; i += 4) {
    const o = <usize>i * 4;
    v128.store(residual + o, f32x4.add(v128.load(residual + o), v128.load(delta + o)));
  }
  for (; i < total; i++) {
    const o = <usize>i * 4;
    store<f32>(residual + o, load<f32>(residual + o) + load<f32>(delta + o));
  }
  rmsNorm(residual, weight, out, m, n, eps);
}

/**
 * Rotary embedding in place on `m` rows, each holding `heads` vectors of `headSize` floats
 * starting at `x + row * rowStride * 4`; row r is at position pos0 + r. cos/sin caches are
 * [positions, rotaryDim / 2]. Non-interleaved (GroupQueryAttention's rotary_interleaved 0, the
 * HF "rotate_half" form) pairs element i with i + rotaryDim/2; interleaved pairs 2i with 2i+1.
 */
export function rotary(
  x: usize,
  m: i32,
  rowStride: i32,
  heads: i32,
  headSize: i32,
  rotaryDim: i32,
  pos0: i32,
  cos: usize,
  sin: usize,
  interleaved: i32,
): void {
  const half = rotaryDim >> 1;
  for (let r = 0; r < m; r++) {
    const c = cos + <usize>((pos0 + r) * half) * 4;
    const s = sin + <usize>((pos0 + r) * half) * 4;
    for (let h = 0; h < heads; h++) {
      const v = x + <usize>(r * rowStride + h * headSize) * 4;
      for (let i = 0; i < half; i++) {
        const ci = load<f32>(c + <usize>i * 4);
        const si = load<f32>(s + <usize>i * 4);
        const a = interleaved ? v + <usize>(2 * i) * 4 : v + <usize>i * 4;
        const b = interleaved ? a + 4 : v + <usize>(i + half) * 4;
        const x1 = load<f32>(a);
        const x2 = load<f32>(b);
        store<f32>(a, x1 * ci - x2 * si);
        store<f32>(b, x2 * ci + x1 * si);
      }
    }
  }
}

/**
 * fp32 to fp16 bits, rounded to nearest even. Finite values beyond fp16's range are clamped to
 * +-65504 rather than made infinite (an infinite key would turn attention into NaN); NaN stays NaN.
 */
function halfBits(f: f32): u32 {
  let x = reinterpret<u32>(f);
  const sign = (x >> 16) & 0x8000;
  x &= 0x7fffffff;
  let o: u32;
  if (x >= 0x477ff000) {
    // at or past the midpoint between 65504 and 65536
    o = x > 0x7f800000 ? 0x7e00 : 0x7bff;
  } else if (x < 0x38800000) {
    // below fp16's smallest normal (2^-14): adding 0.5 lines the mantissa up with fp16's
    // subnormal spacing (2^-24), and the fp32 addition does the rounding
    const magic: u32 = 0x3f000000;
    o = reinterpret<u32>(reinterpret<f32>(x) + reinterpret<f32>(magic)) - magic;
  } else {
    // rebias the exponent, add just under half a unit plus the kept bit's parity, truncate
    o = (x + 0xc8000fff + ((x >> 13) & 1)) >> 13;
  }
  return o | sign;
}

/** fp16 bits (in the low 16 bits of each i32 lane) to fp32: shift into place, rescale by 2^112. */
function halfLanes(h: v128): v128 {
  const mag = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const f = f32x4.mul(mag, f32x4.splat(reinterpret<f32>(0x77800000)));
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

function halfScalar(h: u32): f32 {
  return reinterpret<f32>(
    reinterpret<u32>(reinterpret<f32>((h & 0x7fff) << 13) * reinterpret<f32>(0x77800000)) |
      ((h & 0x8000) << 16),
  );
}

/** n floats to fp16 (see halfBits). */
export function toHalf(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    store<u16>(dst + <usize>i * 2, <u16>halfBits(load<f32>(src + <usize>i * 4)));
  }
}

/** n fp16 values to floats (exact). */
export function fromHalf(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(src + <usize>i * 2);
    v128.store(dst + <usize>i * 4, halfLanes(i32x4.extend_low_i16x8_u(v)));
    v128.store(dst + <usize>i * 4, halfLanes(i32x4.extend_high_i16x8_u(v)), 16);
  }
  for (; i < n; i++) {
    store<f32>(dst + <usize>i * 4, halfScalar(<u32>load<u16>(src + <usize>i * 2)));
  }
}

/**
 * Copies `heads` vectors of `headSize` floats from each of `m` rows (row r at
 * `src + r * rowStride * 4`) into a cache laid out [heads, capacity, headSize] at positions
 * pos0 + r, as fp32 or (half != 0) fp16.
 */
export function cacheRows(
  src: usize,
  m: i32,
  rowStride: i32,
  heads: i32,
  headSize: i32,
  cache: usize,
  capacity: i32,
  pos0: i32,
  half: i32,
): void {
  for (let r = 0; r < m; r++) {
    for (let h = 0; h < heads; h++) {
      const from = src + <usize>(r * rowStride + h * headSize) * 4;
      const slot = <usize>h * <usize>capacity + <usize>(pos0 + r);
      if (half) toHalf(from, cache + slot * <usize>headSize * 2, headSize);
      else memory.copy(cache + slot * <usize>headSize * 4, from, <usize>headSize * 4);
    }
  }
}

function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + <usize>i * 4), v128.load(b + <usize>i * 4)));
  }
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + <usize>i * 4) * load<f32>(b + <usize>i * 4);
  return s;
}

function dotHalf(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(b + <usize>i * 2);
    const pa = a + <usize>i * 4;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(pa), halfLanes(i32x4.extend_low_i16x8_u(v))));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(pa, 16), halfLanes(i32x4.extend_high_i16x8_u(v))));
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++)
    s += load<f32>(a + <usize>i * 4) * halfScalar(<u32>load<u16>(b + <usize>i * 2));
  return s;
}

/** o[i] += p * v[i] over n values; v in fp16 (half != 0) or fp32. */
function axpy(o: usize, p: f32, v: usize, n: i32, half: i32): void {
  const pv = f32x4.splat(p);
  let i = 0;
  if (half) {
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(v + <usize>i * 2);
      const oo = o + <usize>i * 4;
      v128.store(
        oo,
        f32x4.add(v128.load(oo), f32x4.mul(pv, halfLanes(i32x4.extend_low_i16x8_u(h)))),
      );
      v128.store(
        oo,
        f32x4.add(v128.load(oo, 16), f32x4.mul(pv, halfLanes(i32x4.extend_high_i16x8_u(h)))),
        16,
      );
    }
    for (; i < n; i++) {
      const oo = o + <usize>i * 4;
      store<f32>(oo, load<f32>(oo) + p * halfScalar(<u32>load<u16>(v + <usize>i * 2)));
    }
    return;
  }
  for (; i + 4 <= n; i += 4) {
    const oo = o + <usize>i * 4;
    v128.store(oo, f32x4.add(v128.load(oo), f32x4.mul(pv, v128.load(v + <usize>i * 4))));
  }
  for (; i < n; i++) {
    const oo = o + <usize>i * 4;
    store<f32>(oo, load<f32>(oo) + p * load<f32>(v + <usize>i * 4));
  }
}

/**
 * Causal attention over the cache for `m` query rows (row r at position past + r sees
 * positions 0..past + r) and query heads [h0, h1). q rows are `qStride` floats apart (the
 * queries may sit inside packed QKV rows); out is [m, heads * headSize]; the
 * caches are [kvHeads, capacity, headSize], already holding the new rows' keys and values.
 * Query head h reads KV head h / (heads / kvHeads) (grouped-query attention). `scratch` holds
 * past + m floats. With `half` != 0 the caches hold fp16 (see cacheRows).
 */
export function attention(
  q: usize,
  qStride: i32,
  kCache: usize,
  vCache: usize,
  out: usize,
  m: i32,
  past: i32,
  heads: i32,
  kvHeads: i32,
  headSize: i32,
  capacity: i32,
  scale: f32,
  h0: i32,
  h1: i32,
  scratch: usize,
  half: i32,
): void {
  const group = heads / kvHeads;
  const rowFloats = heads * headSize;
  const elem: usize = half ? 2 : 4;
  const rowBytes = <usize>headSize * elem;
  for (let r = 0; r < m; r++) {
    const total = past + r + 1;
    for (let h = h0; h < h1; h++) {
      const kv = h / group;
      const qv = q + <usize>(r * qStride + h * headSize) * 4;
      const kBase = kCache + <usize>kv * <usize>capacity * rowBytes;
      const vBase = vCache + <usize>kv * <usize>capacity * rowBytes;
      let best: f32 = -Infinity;
      for (let t = 0; t < total; t++) {
        const kt = kBase + <usize>t * rowBytes;
        const sc = (half ? dotHalf(qv, kt, headSize) : dot(qv, kt, headSize)) * scale;
        store<f32>(scratch + <usize>t * 4, sc);
        if (sc > best) best = sc;
      }
      let denom: f32 = 0;
      for (let t = 0; t < total; t++) {
        const e = Mathf.exp(load<f32>(scratch + <usize>t * 4) - best);
        store<f32>(scratch + <usize>t * 4, e);
        denom += e;
      }
      const o = out + <usize>(r * rowFloats + h * headSize) * 4;
      memory.fill(o, 0, <usize>headSize * 4);
      for (let t = 0; t < total; t++) {
        const p = load<f32>(scratch + <usize>t * 4) / denom;
        axpy(o, p, vBase + <usize>t * rowBytes, headSize, half);
      }
    }
  }
}

/** out = silu(gate) * up over n floats, silu(x) = x * sigmoid(x). */
export function siluMul(gate: usize, up: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i * 4;
    const g = load<f32>(gate + o);
    store<f32>(out + o, (g / (<f32>1 + Mathf.exp(-g))) * load<f32>(up + o));
  }
}

/**
 * Reads `bytes` (a multiple of 64) from `p` with SIMD loads and returns a checksum: the bench's
 * measure of the machine's read bandwidth from wasm, the ceiling of a memory-bound decoder.
 */
export function readBytes(p: usize, bytes: usize): i32 {
  let a = i32x4.splat(0);
  let b = i32x4.splat(0);
  let c = i32x4.splat(0);
  let d = i32x4.splat(0);
  const end = p + bytes;
  for (let q = p; q < end; q += 64) {
    a = i32x4.add(a, v128.load(q));
    b = i32x4.add(b, v128.load(q, 16));
    c = i32x4.add(c, v128.load(q, 32));
    d = i32x4.add(d, v128.load(q, 48));
  }
  const s = i32x4.add(i32x4.add(a, b), i32x4.add(c, d));
  return (
    i32x4.extract_lane(s, 0) +
    i32x4.extract_lane(s, 1) +
    i32x4.extract_lane(s, 2) +
    i32x4.extract_lane(s, 3)
  );
}
