// Moves a recognised decoder's weights from the model files into wasm memory: int4 bytes go
// straight to their place, scales/norms/rotary caches become fp32, the embedding table stays in
// ordinary JS memory (one row is read per token, and wasm32's 4 GiB is kept for the rest).
// External data is streamed, so no second full-size copy of a multi-GB file is made.
import type { ByteProgress, ModelFiles } from '../engines/files.ts';
import { InferenceError } from '../protocol.ts';
import type { Arena } from './kernels.ts';
import { DataType, tensorByteLength, type OnnxTensor } from './onnx-graph.ts';

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    t[h] =
      exp === 0
        ? sign * mant * 2 ** -24
        : exp === 31
          ? mant
            ? NaN
            : sign * Infinity
          : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

/** fp32 values of an fp32 or fp16 tensor's little-endian bytes. */
export function toFloat32(bytes: Uint8Array, dataType: number): Float32Array {
  if (dataType === DataType.FLOAT) {
    const out = new Float32Array(bytes.length / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const halves = new Uint16Array(bytes.length / 2);
  new Uint8Array(halves.buffer).set(bytes);
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = F16_TABLE[halves[i]!]!;
  return out;
}

export function halfToFloat(h: number): number {
  return F16_TABLE[h & 0xffff]!;
}

/** One tensor to read: `deliver` gets each piece of its bytes and where in the tensor it goes. */
export interface TensorRead {
  tensor: OnnxTensor;
  deliver(piece: Uint8Array, at: number): void;
}

/** Reads a tensor whole into a fresh buffer and hands it to `done`. */
export function collect(tensor: OnnxTensor, done: (bytes: Uint8Array) => void): TensorRead {
  const buf = new Uint8Array(tensorByteLength(tensor));
  let got = 0;
  return {
    tensor,
    deliver(piece, at) {
      buf.set(piece, at);
      got += piece.length;
      if (got === buf.length) done(buf);
    },
  };
}

/** Copies a tensor's bytes into wasm memory at `ptr`. */
export function intoArena(tensor: OnnxTensor, arena: Arena, ptr: number): TensorRead {
  return {
    tensor,
    deliver(piece, at) {
      arena.u8(ptr + at, piece.length).set(piece);
    },
  };
}

async function openStream(
  files: ModelFiles,
  path: string,
): Promise<{ reader: ReadableStreamDefaultReader<Uint8Array> | null; whole: Uint8Array | null }> {
  const r = await files.response(path);
  if (r?.body) return { reader: r.body.getReader(), whole: null };
  return { reader: null, whole: await files.bytes(path) };
}

/**
 * Delivers every requested tensor: inline ones at once, external ones by streaming each data
 * file once from start to end. `dir` is the graph's folder (external paths are relative to it).
 */
export async function readTensors(
  files: ModelFiles,
  dir: string,
  reads: TensorRead[],
  onProgress?: (file: string) => ByteProgress,
): Promise<void> {
  const byFile = new Map<string, TensorRead[]>();
  for (const r of reads) {
    const d = r.tensor.data;
    if (d.kind === 'inline') {
      if (d.bytes.length) r.deliver(d.bytes, 0);
      continue;
    }
    const list = byFile.get(d.file) ?? [];
    list.push(r);
    byFile.set(d.file, list);
  }
  for (const [file, list] of byFile) {
    const path = `${dir}${file}`;
    if (!(await files.has(path))) {
      throw new InferenceError(
        'load-failed',
        `${files.name}: external data file ${path} is missing`,
      );
    }
    const ext = (r: TensorRead) => r.tensor.data as { offset: number; length: number };
    list.sort((a, b) => ext(a).offset - ext(b).offset);
    const end = Math.max(...list.map((r) => ext(r).offset + ext(r).length));
    const progress = onProgress?.(path);
    const { reader, whole } = await openStream(files, path);
    let pos = 0;
    let first = 0; // first range not yet complete
    const feed = (chunk: Uint8Array) => {
      const chunkEnd = pos + chunk.length;
      for (let i = first; i < list.length; i++) {
        const { offset, length } = ext(list[i]!);
        if (offset >= chunkEnd) break;
        const from = Math.max(offset, pos);
        const to = Math.min(offset + length, chunkEnd);
        if (to > from) list[i]!.deliver(chunk.subarray(from - pos, to - pos), from - offset);
        if (offset + length <= chunkEnd && i === first) first++;
      }
      pos = chunkEnd;
      progress?.(Math.min(pos, end), end);
    };
    if (whole) feed(whole);
    else {
      for (;;) {
        const { done, value } = await reader!.read();
        if (done) break;
        feed(value);
        if (pos >= end) {
          await reader!.cancel();
          break;
        }
      }
    }
    if (pos < end) {
      throw new InferenceError(
        'load-failed',
        `${files.name}: ${path} ends at byte ${pos}, but the graph's weights reach byte ${end}`,
      );
    }
  }
}
