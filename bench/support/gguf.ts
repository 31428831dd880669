// A GGUF (version 3) writer, enough for llama.cpp to load a model: typed metadata, tensor infos,
// 32-byte aligned data, and gguf-split style splits. Plus the one repacking that matters here:
// onnxruntime MatMulNBits int4 blocks into ggml Q4_0 blocks (the same bits per weight).
import { closeSync, openSync, writeSync } from 'node:fs';
import { toHalf } from '../../scripts/make-tiny-phi3.ts';

export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2 } as const;
export type GgmlType = (typeof GGML_TYPE)[keyof typeof GGML_TYPE];

/** Bytes of one row of `n` elements. */
export function rowBytes(type: GgmlType, n: number): number {
  if (type === GGML_TYPE.F32) return 4 * n;
  if (type === GGML_TYPE.F16) return 2 * n;
  if (n % 32 !== 0) throw new Error(`Q4_0 rows must hold a multiple of 32 elements, not ${n}`);
  return (n / 32) * 18;
}

// Metadata value types of the GGUF format.
const T = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

/** A typed metadata value: llama.cpp checks the type of each key it reads, so it is explicit. */
export type GgufValue =
  | { type: 'u16' | 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'f32[]'; value: Float32Array | number[] }
  | { type: 'i32[]'; value: Int32Array | number[] };

export const u16 = (value: number): GgufValue => ({ type: 'u16', value });
export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const i32 = (value: number): GgufValue => ({ type: 'i32', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the row length (the contiguous one). */
  dims: number[];
  type: GgmlType;
  /** Produces the tensor's bytes (called once, while writing, so big tensors are not all held). */
  data(): Uint8Array;
}

export const ALIGNMENT = 32;
const align = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

export function tensorBytes(t: Pick<GgufTensor, 'dims' | 'type'>): number {
  const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return rowBytes(t.type, t.dims[0]!) * rows;
}

/** Little-endian byte sink that grows as needed. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number) {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number) {
    this.room(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number) {
    this.room(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number) {
    this.room(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number) {
    this.room(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number) {
    this.room(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number) {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  string(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad() {
    const n = align(this.length) - this.length;
    this.room(n);
    this.length += n; // the buffer is zero-filled
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(out: Bytes, key: string, v: GgufValue) {
  out.string(key);
  switch (v.type) {
    case 'u16':
      out.u32(T.U16);
      out.u16(v.value);
      return;
    case 'u32':
      out.u32(T.U32);
      out.u32(v.value);
      return;
    case 'i32':
      out.u32(T.I32);
      out.i32(v.value);
      return;
    case 'f32':
      out.u32(T.F32);
      out.f32(v.value);
      return;
    case 'u64':
      out.u32(T.U64);
      out.u64(v.value);
      return;
    case 'bool':
      out.u32(T.BOOL);
      out.u8(v.value ? 1 : 0);
      return;
    case 'string':
      out.u32(T.STRING);
      out.string(v.value);
      return;
    case 'string[]':
      out.u32(T.ARRAY);
      out.u32(T.STRING);
      out.u64(v.value.length);
      for (const s of v.value) out.string(s);
      return;
    case 'f32[]':
      out.u32(T.ARRAY);
      out.u32(T.F32);
      out.u64(v.value.length);
      for (const x of v.value) out.f32(x);
      return;
    case 'i32[]':
      out.u32(T.ARRAY);
      out.u32(T.I32);
      out.u64(v.value.length);
      for (const x of v.value) out.i32(x);
      return;
  }
}

/** The header of one GGUF file: metadata, tensor infos, padding up to the data section. */
export function ggufHeader(metadata: Map<string, GgufValue>, tensors: GgufTensor[]): Uint8Array {
  const out = new Bytes();
  out.u8(0x47); // "GGUF"
  out.u8(0x47);
  out.u8(0x55);
  out.u8(0x46);
  out.u32(3);
  out.u64(tensors.length);
  out.u64(metadata.size);
  for (const [key, v] of metadata) writeValue(out, key, v);
  let offset = 0;
  for (const t of tensors) {
    out.string(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(offset);
    offset = align(offset + tensorBytes(t));
  }
  out.pad();
  return out.bytes();
}

/**
 * Groups tensors into splits of at most `maxBytes` of data each (a tensor larger than that gets a
 * split of its own), keeping their order.
 */
export function planSplits(tensors: GgufTensor[], maxBytes: number): GgufTensor[][] {
  const splits: GgufTensor[][] = [];
  let current: GgufTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = align(tensorBytes(t));
    if (current.length && size + n > maxBytes) {
      splits.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += n;
  }
  if (current.length) splits.push(current);
  return splits;
}

/** llama.cpp's split naming: `<prefix>-00001-of-00003.gguf`. */
export function splitPath(prefix: string, index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `${prefix}-${pad(index + 1)}-of-${pad(count)}.gguf`;
}

/**
 * Writes the model as `<prefix>.gguf`, or as gguf-split files when the data passes `maxSplitBytes`:
 * the first split carries all metadata, every split carries split.no / split.count /
 * split.tensors.count (u16, u16, i32: the types llama.cpp's loader insists on). Returns the paths.
 */
export function writeGguf(
  prefix: string,
  metadata: Map<string, GgufValue>,
  tensors: GgufTensor[],
  maxSplitBytes = Infinity,
): string[] {
  const splits = planSplits(tensors, maxSplitBytes);
  const paths: string[] = [];
  splits.forEach((part, i) => {
    let meta = metadata;
    if (splits.length > 1) {
      meta = new Map(i === 0 ? metadata : []);
      meta.set('split.no', u16(i));
      meta.set('split.count', u16(splits.length));
      meta.set('split.tensors.count', i32(tensors.length));
    }
    const path = splits.length > 1 ? splitPath(prefix, i, splits.length) : `${prefix}.gguf`;
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, ggufHeader(meta, part));
      for (const t of part) {
        const data = t.data();
        const want = tensorBytes(t);
        if (data.length !== want)
          throw new Error(`tensor ${t.name}: produced ${data.length} bytes, expected ${want}`);
        writeSync(fd, data);
        const pad = align(want) - want;
        if (pad) writeSync(fd, new Uint8Array(pad));
      }
    } finally {
      closeSync(fd);
    }
    paths.push(path);
  });
  return paths;
}

// ---------------------------------------------------------------------------------------------
// Numbers

/** fp32 to fp16 bits, rounding to nearest even (the fixture script's conversion). */
export { toHalf as floatToHalf } from '../../scripts/make-tiny-phi3.ts';

/** fp32 values as fp16 bytes. */
export function toHalfBytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toHalf(values[i]!);
  return new Uint8Array(out.buffer);
}

/**
 * MatMulNBits int4 block-32 weight rows (B [n, k/32, 16] bytes, symmetric: no zero points, so the
 * zero point is 8) with one scale per block, as ggml Q4_0 rows. Both compute (q - 8) * scale;
 * only the nibble order differs: MatMulNBits packs element 2i in the low nibble of byte i and
 * 2i+1 in the high one, Q4_0 packs element i low and i+16 high. The scale becomes Q4_0's fp16 d
 * (exact when the graph's scales are fp16; rounded to 11 bits when they are fp32).
 * `scales` are fp32 values (already widened from fp16 where needed).
 */
export function matMulNBitsToQ4_0(
  packed: Uint8Array,
  scales: Float32Array,
  n: number,
  k: number,
): Uint8Array {
  if (k % 32 !== 0) throw new Error(`Q4_0 needs K to be a multiple of 32, got ${k}`);
  const blocks = (n * k) / 32;
  if (packed.length !== blocks * 16)
    throw new Error(`packed weight holds ${packed.length} bytes, expected ${blocks * 16}`);
  if (scales.length !== blocks)
    throw new Error(`weight has ${scales.length} scales, expected ${blocks}`);
  const out = new Uint8Array(blocks * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const src = b * 16;
    const dst = b * 18;
    view.setUint16(dst, toHalf(scales[b]!), true);
    for (let j = 0; j < 16; j++) {
      // element j (low half of the block) and element j + 16 (high half)
      const lo = (packed[src + (j >> 1)]! >> ((j & 1) * 4)) & 15;
      const hi = (packed[src + 8 + (j >> 1)]! >> ((j & 1) * 4)) & 15;
      out[dst + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
