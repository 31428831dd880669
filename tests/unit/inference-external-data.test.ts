// Loading weights without a whole-file copy in JS: the chunked reader fills one buffer while
// holding at most one piece besides it, and onnxruntime-web (its real wasm, here in Node) builds a
// session from external data it reads tensor by tensor through the on-demand stand-in, with the
// same logits as from the whole file.
import * as ortWeb from 'onnxruntime-web';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LazyFileMisuse,
  checkLazyFileUsed,
  lazyExternalFile,
  type SyncRangeReader,
} from '../../src/lib/inference/engines/external-data.ts';
import { assembleChunks, filesFromMap } from '../../src/lib/inference/engines/files.ts';
import { createOrtRuntime, type OrtModule } from '../../src/lib/inference/engines/ort-runtime.ts';
import { InferenceError } from '../../src/lib/inference/protocol.ts';
import { ensureTinyPhi3, greedyOrtNode, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

const PROMPT = [1, 32010, 13, 298, 441, 384, 259, 466, 330, 362, 32007, 13, 32001, 13];

let paths: TinyPhi3Paths;

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  ortWeb.env.wasm.numThreads = 1;
});

/** A file on disk read with positioned synchronous reads, as FileReaderSync reads a Blob. */
function diskReader(path: string): {
  read: SyncRangeReader;
  close(): void;
  peakHeld: () => number;
} {
  const fd = openSync(path, 'r');
  let peak = 0;
  return {
    read: (start, end) => {
      const out = new Uint8Array(end - start);
      let off = 0;
      while (off < out.length) off += readSync(fd, out, off, out.length - off, start + off);
      peak = Math.max(peak, out.length);
      return out;
    },
    close: () => closeSync(fd),
    peakHeld: () => peak,
  };
}

describe('assembling a stored file from its chunks', () => {
  it('fills one buffer and keeps at most one piece alive beside it', async () => {
    const total = 10 * 1024 + 7;
    const source = new Uint8Array(total).map((_, i) => (i * 31) & 0xff);
    let outstanding = 0;
    let maxOutstanding = 0;
    let allocated = 0;
    async function* pieces() {
      for (let off = 0; off < total; off += 1024) {
        // Each piece is a fresh copy, like a Blob slice read; it counts as alive until the
        // reader asks for the next one.
        const piece = source.slice(off, off + 1024);
        allocated += piece.length;
        outstanding++;
        maxOutstanding = Math.max(maxOutstanding, outstanding);
        yield piece;
        outstanding--;
      }
    }
    const progress: number[] = [];
    const out = await assembleChunks(total, pieces(), (loaded) => progress.push(loaded), 'w.data');
    expect(out).toEqual(source);
    expect(maxOutstanding).toBe(1);
    // Extra allocation: the pieces themselves, each read once; no second whole-file buffer.
    expect(allocated).toBe(total);
    expect(progress.at(-1)).toBe(total);
  });

  it('names the file when the chunks do not add up to its recorded size', async () => {
    await expect(
      assembleChunks(10, [new Uint8Array(4)], undefined, 'model.onnx.data'),
    ).rejects.toThrow(/model\.onnx\.data: 4 bytes read, expected 10/);
    await expect(
      assembleChunks(3, [new Uint8Array(4)], undefined, 'model.onnx.data'),
    ).rejects.toThrow(/model\.onnx\.data: longer than its recorded size 3/);
  });
});

describe('the on-demand external-data stand-in', () => {
  it('answers byteLength and subarray from the reader and refuses any other use by name', () => {
    const bytes = new Uint8Array(100).map((_, i) => i);
    const f = lazyExternalFile('w.data', 100, (s, e) => bytes.slice(s, e));
    expect(f.data instanceof Uint8Array).toBe(true);
    expect(f.data.byteLength).toBe(100);
    expect([...f.data.subarray(10, 14)]).toEqual([10, 11, 12, 13]);
    expect(f.stats).toMatchObject({ reads: 1, bytesRead: 4, largestRead: 4 });
    expect(() => f.data.subarray(90, 101)).toThrow(/w\.data: range 90-101 is outside the file/);
    expect(() => f.data.buffer).toThrow(LazyFileMisuse);
    expect(f.stats.misuse).toMatch(/w\.data: range 90-101/);
    // Awaiting it must not treat it as a thenable.
    return expect(Promise.resolve(f.data).then((d) => d.byteLength)).resolves.toBe(100);
  });

  it("keeps the reader's own error, which onnxruntime would swallow", () => {
    const f = lazyExternalFile('w.data', 100, () => {
      throw new DOMException('The requested file could not be read', 'NotReadableError');
    });
    expect(() => f.data.subarray(0, 10)).toThrow(/could not be read/);
    expect(f.stats.misuse).toBe(
      'w.data: reading bytes 0-10 failed (NotReadableError: The requested file could not be read)',
    );
  });

  it('a short read is an error, not silently zero-filled weights', () => {
    const f = lazyExternalFile('w.data', 100, () => new Uint8Array(3));
    expect(() => f.data.subarray(0, 10)).toThrow(/gave 3 bytes, expected 10/);
  });

  it('onnxruntime-web builds the session reading tensor by tensor, with the logits of the whole-file load', async () => {
    const model = paths.genaiModel;
    const dataPath = `${model}.data`;
    const size = statSync(dataPath).size;
    const whole = await ortWeb.InferenceSession.create(readFileSync(model), {
      executionProviders: ['wasm'],
      externalData: [{ path: basename(dataPath), data: readFileSync(dataPath) }],
    });
    const disk = diskReader(dataPath);
    const lazy = lazyExternalFile(basename(dataPath), size, disk.read);
    let onDemand: ortWeb.InferenceSession;
    try {
      onDemand = await ortWeb.InferenceSession.create(readFileSync(model), {
        executionProviders: ['wasm'],
        externalData: [{ path: basename(dataPath), data: lazy.data }],
      });
    } finally {
      disk.close();
    }
    try {
      expect(lazy.stats.misuse).toBeUndefined();
      checkLazyFileUsed(basename(dataPath), size, lazy.stats);
      // Every initializer was read once, each on its own: many reads, none the whole file.
      expect(lazy.stats.reads).toBeGreaterThan(10);
      expect(lazy.stats.bytesRead).toBeLessThanOrEqual(size);
      expect(lazy.stats.bytesRead).toBeGreaterThan(size * 0.9);
      expect(disk.peakHeld()).toBeLessThan(size);
      const a = await greedyOrtNode(ortWeb, whole, PROMPT, 4);
      const b = await greedyOrtNode(ortWeb, onDemand, PROMPT, 4, { force: a.ids });
      expect(b.ids).toEqual(a.ids);
      for (let step = 0; step < 4; step++) expect(b.logits[step]).toEqual(a.logits[step]);
    } finally {
      await whole.release();
      await onDemand.release();
    }
  });

  it('the engines take the on-demand path when the files offer range reads', async () => {
    const model = paths.genaiModel;
    const name = basename(model);
    const dataPath = `${model}.data`;
    const size = statSync(dataPath).size;
    const disk = diskReader(dataPath);
    let ranges = 0;
    const files = {
      ...filesFromMap('tiny', {
        [name]: new Uint8Array(readFileSync(model)).buffer,
        // Never read whole on this path: an empty stand-in proves it.
        [`${name}.data`]: new ArrayBuffer(0),
      }),
      rangeReader: async () => ({
        size,
        read: (s: number, e: number) => {
          ranges++;
          return disk.read(s, e);
        },
      }),
    };
    const progress: [number, number][] = [];
    const runtime = createOrtRuntime(ortWeb as unknown as OrtModule, files, {
      backend: 'wasm',
      threads: 1,
      executionProviders: ['wasm'],
    });
    try {
      const session = await runtime.createSession({
        graph: name,
        externalData: [`${name}.data`],
        onProgress: (file, loaded, total) =>
          file.endsWith('.data') && progress.push([loaded, total]),
      });
      expect(ranges).toBeGreaterThan(10);
      expect(progress.at(-1)?.[1]).toBe(size);
      expect(session.inputNames).toContain('input_ids');
      await session.release();
    } finally {
      disk.close();
    }
  });

  it('a reader that fails surfaces as a load error naming the file', async () => {
    const model = paths.genaiModel;
    const name = basename(model);
    const size = statSync(`${model}.data`).size;
    const files = {
      ...filesFromMap('tiny', { [name]: new Uint8Array(readFileSync(model)).buffer }),
      rangeReader: async () => ({ size, read: () => new Uint8Array(1) }),
    };
    const runtime = createOrtRuntime(ortWeb as unknown as OrtModule, files, {
      backend: 'wasm',
      threads: 1,
      executionProviders: ['wasm'],
    });
    const err = await runtime
      .createSession({ graph: name, externalData: [`${name}.data`] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as InferenceError).message).toMatch(
      /\.onnx\.data: reading bytes \d+-\d+ gave 1 bytes/,
    );
  });
});
