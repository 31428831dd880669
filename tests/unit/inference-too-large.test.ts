// A model that cannot fit in wasm32's 4 GiB is refused with its own error code (`too-large`) and
// its sizes before any weight is read; one that fits goes on to the worker, and WebGPU is not
// bound by the wasm32 limit.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync } from 'fflate';
import { openDatabase } from '../../src/lib/store/db.ts';
import { getModelVersionRecord } from '../../src/lib/store/registry.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { loadModelVersion, type ServableVersion } from '../../src/lib/services/playground.ts';
import type { InferenceClient, LoadOptions } from '../../src/lib/inference/client.ts';
import { InferenceError, type ReadyMessage } from '../../src/lib/inference/protocol.ts';
import { WASM32_MAX_BYTES, checkWasmFit, wasmFitError } from '../../src/lib/inference/wasm-fit.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('the wasm32 size check', () => {
  it('lets a Phi-3-mini int4 model (about 2.3 GiB) through', () => {
    expect(wasmFitError({ weightBytes: 2.3 * GiB, minKvBytes: 16 * 384 * 1024 })).toBeNull();
    expect(() => checkWasmFit({ weightBytes: 2.3 * GiB, minKvBytes: 0 })).not.toThrow();
  });

  it('refuses a 14B int4 model (about 7.7 GiB) with too-large and the sizes', () => {
    const e = wasmFitError({ weightBytes: 7.7 * GiB, minKvBytes: 64 * MiB });
    expect(e).toBeInstanceOf(InferenceError);
    expect(e!.code).toBe('too-large');
    expect(e!.message).toContain('needs 7.76 GiB of WebAssembly memory');
    expect(e!.message).toContain('weights 7.70 GiB');
    expect(e!.message).toContain('smallest KV cache 0.06 GiB');
    expect(e!.message).toContain('wasm32 has 4.00 GiB');
    expect(e!.message).toMatch(/WebGPU, or use a smaller model/);
  });

  it('counts the KV cache and buffers: weights that fit alone can still be refused', () => {
    const input = { weightBytes: WASM32_MAX_BYTES - 100 * MiB, minKvBytes: 60 * MiB };
    expect(wasmFitError(input)).toBeNull();
    const e = wasmFitError({ ...input, overheadBytes: 64 * MiB });
    expect(e?.code).toBe('too-large');
    expect(e?.message).toContain('buffers 0.06 GiB');
    // Exactly at the limit still fits.
    expect(wasmFitError({ weightBytes: WASM32_MAX_BYTES, minKvBytes: 0 })).toBeNull();
    expect(wasmFitError({ weightBytes: WASM32_MAX_BYTES, minKvBytes: 1 })?.code).toBe('too-large');
  });

  it('uses the limit it is given', () => {
    expect(wasmFitError({ weightBytes: 3 * GiB, minKvBytes: 0, limitBytes: 2 * GiB })?.code).toBe(
      'too-large',
    );
  });
});

function modelZip(): File {
  const env = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
  return new File(
    [
      zipSync({
        MLmodel: strToU8(
          `flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.1\n  python_function:\n    data: model.onnx\n${env}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
        ),
        'model.onnx': new Uint8Array(4096).fill(7),
        'tokenizer.json': strToU8('{"model": {}}'),
        'conda.yaml': strToU8('name: x\n'),
        'python_env.yaml': strToU8('python: 3.11.9\n'),
      }) as BlobPart,
    ],
    'model.zip',
  );
}

function recordingClient(): { client: InferenceClient; loads: LoadOptions[] } {
  const loads: LoadOptions[] = [];
  const client = {
    load(options: LoadOptions): Promise<ReadyMessage> {
      loads.push(options);
      return Promise.resolve({ type: 'ready' } as unknown as ReadyMessage);
    },
  } as unknown as InferenceClient;
  return { client, loads };
}

/** A registered version whose weights are said to total `size` bytes (as a 14B import would). */
async function version(name: string, size: number): Promise<ServableVersion> {
  const db = await openDatabase({ name: `too-large-${name}` });
  await new RegistryClient(db).importModelZip(modelZip(), { name });
  const rec = await getModelVersionRecord(db, name, '1');
  rec.servable = {
    kind: 'chat',
    layout: 'web',
    root: '',
    files: { model: 'model.onnx', tokenizer: 'tokenizer.json' },
  };
  return {
    name,
    version: '1',
    versionId: rec.id,
    kind: 'chat',
    layout: 'web',
    size,
    description: '',
    record: rec,
  };
}

describe('loading a version too large for wasm32', () => {
  it('is refused on the CPU backends before anything reaches the worker', async () => {
    const target = await version('phi3-medium', 7.7 * GiB);
    const db = await openDatabase({ name: 'too-large-phi3-medium' });
    for (const backend of ['wasm', 'cpu', 'ort-wasm'] as const) {
      const { client, loads } = recordingClient();
      const err = await loadModelVersion(client, db, target, backend).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InferenceError);
      expect((err as InferenceError).code).toBe('too-large');
      expect((err as Error).message).toContain('weights 7.70 GiB');
      expect(loads).toEqual([]);
    }
  });

  it('goes on to the worker on WebGPU, and on the CPU when it fits', async () => {
    const big = await version('phi3-medium-gpu', 7.7 * GiB);
    const db = await openDatabase({ name: 'too-large-phi3-medium-gpu' });
    const { client, loads } = recordingClient();
    await loadModelVersion(client, db, big, 'webgpu');
    expect(loads).toHaveLength(1);
    const small = await version('phi3-mini', 2.3 * GiB);
    const db2 = await openDatabase({ name: 'too-large-phi3-mini' });
    await loadModelVersion(client, db2, small, 'wasm');
    expect(loads).toHaveLength(2);
  });
});
