// The Playground refuses to load a version whose weights were deleted to free space, with a
// message that names the version and the way back, before anything reaches the worker; a version
// with its weights loads its files.
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { getModelVersionRecord } from '../../src/lib/store/registry.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { deleteModelWeights } from '../../src/lib/services/storage-usage.ts';
import {
  WeightsMissingError,
  loadModelVersion,
  type ServableVersion,
} from '../../src/lib/services/playground.ts';
import type { InferenceClient, LoadOptions } from '../../src/lib/inference/client.ts';
import type { ReadyMessage } from '../../src/lib/inference/protocol.ts';

let n = 0;
const fresh = () => openDatabase({ name: `pg-weights-${n++}` });

function modelZip(): File {
  const env = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
  const weights = new Uint8Array(1_500_000).map((_, i) => (i * 7 + 1) & 255);
  return new File(
    [
      zipSync({
        MLmodel: strToU8(
          `flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.16.1\n  python_function:\n    data: model.onnx\n${env}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
        ),
        'model.onnx': [weights, { level: 0 }],
        'tokenizer.json': strToU8('{"model": {}}'),
        'conda.yaml': strToU8('name: x\n'),
        'python_env.yaml': strToU8('python: 3.11.9\n'),
      }) as BlobPart,
    ],
    'model.zip',
  );
}

/** Records what the worker would be asked to load (Node has no inference worker). */
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

async function servable(name: string): Promise<{ db: AnyDB; target: ServableVersion }> {
  const db = await fresh();
  const reg = new RegistryClient(db);
  await reg.importModelZip(modelZip(), { name });
  const rec = await getModelVersionRecord(db, name, '1');
  // A web-layout chat descriptor over the imported files, as a Phi-3 import would have.
  rec.servable = {
    kind: 'chat',
    layout: 'web',
    root: '',
    files: { model: 'model.onnx', tokenizer: 'tokenizer.json' },
  };
  const target: ServableVersion = {
    name,
    version: '1',
    versionId: rec.id,
    kind: 'chat',
    layout: 'web',
    size: rec.size,
    description: '',
    record: rec,
  };
  return { db, target };
}

describe('loading a version in the Playground', () => {
  it('says the weights were deleted, and sends nothing to the worker', async () => {
    const { db, target } = await servable('phi-mini');
    await deleteModelWeights(db, 'phi-mini', 1);
    const { client, loads } = recordingClient();
    const err = await loadModelVersion(client, db, target, 'auto').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightsMissingError);
    expect((err as Error).message).toBe(
      'The weights of phi-mini v1 were deleted to free space — re-import the model zip or download it again.',
    );
    expect(loads).toEqual([]);
  });

  it('loads the stored files when the weights are there', async () => {
    const { db, target } = await servable('phi-full');
    const { client, loads } = recordingClient();
    await loadModelVersion(client, db, target, 'auto');
    expect(loads).toHaveLength(1);
    const src = loads[0]!.source as { kind: 'files'; files: Record<string, Blob> };
    expect(Object.keys(src.files).sort()).toContain('model.onnx');
    expect(src.files['model.onnx']!.size).toBe(1_500_000);
  });
});
