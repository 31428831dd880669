import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync, unzipSync, type Zippable } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { ModelImportError } from '../../src/lib/services/model-import.ts';
import {
  ArchiveLimitError,
  NotAZipError,
  TruncatedArchiveError,
  UnsafePathError,
} from '../../src/lib/archive/index.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';
import {
  isChatSignature,
  isPromptToStringSignature,
  signatureToStrings,
  llmV1ChatSignature,
} from '../../src/lib/mlflow/signature.ts';

let n = 0;
async function fresh(): Promise<{ db: AnyDB; registry: RegistryClient }> {
  const db = await openDatabase({ name: `import-model-${n++}` });
  return { db, registry: new RegistryClient(db) };
}

const ENV = '    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n';
const weights = (size: number, seed: number) =>
  new Uint8Array(size).map((_, i) => (i * seed + 7) & 0xff);

/** The custom Python wrapper shape: pyfunc + an onnxruntime-genai folder among its artifacts. */
function customWrapperModel(): Zippable {
  const art = 'artifacts/cpu-int4-rtn-block-32-acc-level-4';
  return {
    MLmodel: strToU8(
      `artifact_path: phi3-mini-onnx-model\nflavors:\n  python_function:\n    artifacts:\n      phi3-mini-onnx:\n        path: ${art}\n        uri: /content/cpu-int4-rtn-block-32-acc-level-4\n    cloudpickle_version: 3.0.0\n    code: null\n${ENV}    loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl\n    python_version: 3.10.12\nmlflow_version: 2.14.3\nmodel_uuid: 6f2b1c0a9e8d4f7b8a6c5d4e3f2a1b0c\nrun_id: 0a1b2c3d4e5f40718293a4b5c6d7e8f9\nsaved_input_example_info:\n  artifact_path: input_example.json\n  pandas_orient: split\n  serving_input_path: serving_input_example.json\n  type: dataframe\nsignature:\n  inputs: '[{"type": "string", "name": "prompt", "required": true}]'\n  outputs: '[{"type": "string", "required": true}]'\n  params: null\nutc_time_created: '2024-07-01 10:11:12.123456'\n`,
    ),
    'python_model.pkl': weights(300, 3),
    'conda.yaml': strToU8('channels:\n- conda-forge\nname: mlflow-env\n'),
    'python_env.yaml': strToU8('python: 3.10.12\n'),
    'requirements.txt': strToU8('mlflow==2.14.3\nonnxruntime_genai'),
    'input_example.json': strToU8(
      '{"columns": ["prompt"], "data": [["<|user|>Hi<|end|><|assistant|>"]]}',
    ),
    [`${art}/genai_config.json`]: strToU8(
      '{"model": {"type": "phi3"}, "search": {"max_length": 300}}',
    ),
    [`${art}/phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx`]: weights(5000, 5),
    [`${art}/phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx.data`]: [
      weights(400_000, 11),
      { level: 0 },
    ],
    [`${art}/tokenizer.json`]: strToU8('{"model": {}}'),
    [`${art}/tokenizer_config.json`]: strToU8('{}'),
  };
}

/** The Transformer Pipeline shape with ONNX web-export weights under model/ and a tokenizer component. */
function chatTransformersModel(): Zippable {
  const sig = signatureToStrings(llmV1ChatSignature());
  return {
    MLmodel: strToU8(
      `flavors:\n  python_function:\n${ENV}    loader_module: mlflow.transformers\n    python_version: 3.11.9\n  transformers:\n    components:\n    - tokenizer\n    framework: pt\n    inference_task: llm/v1/chat\n    instance_type: TextGenerationPipeline\n    model_binary: model\n    pipeline_model_type: Phi3ForCausalLM\n    source_model_name: microsoft/Phi-3-mini-4k-instruct\n    task: text-generation\n    tokenizer_type: LlamaTokenizerFast\n    transformers_version: 4.44.2\nmetadata:\n  task: llm/v1/chat\nsignature:\n  inputs: '${sig.inputs}'\n  outputs: '${sig.outputs}'\n  params: null\n`,
    ),
    'model/config.json': strToU8('{"model_type": "phi3"}'),
    'model/generation_config.json': strToU8('{}'),
    'model/onnx/model_q4.onnx': weights(3000, 13),
    'model/onnx/model_q4f16.onnx': weights(3000, 17),
    'model/onnx/model_q4f16.onnx_data': [weights(200_000, 19), { level: 0 }],
    'components/tokenizer/tokenizer.json': strToU8('{"model": {}}'),
    'components/tokenizer/tokenizer_config.json': strToU8('{"chat_template": "..."}'),
  };
}

function referenceOnlyChatModel(): Zippable {
  return {
    MLmodel: strToU8(
      `flavors:\n  transformers:\n    inference_task: llm/v1/chat\n    source_model_name: microsoft/Phi-3-mini-4k-instruct\n    source_model_revision: 0a67737cc96d2554230f90338b163bc6380a2a85\n    task: text-generation\nmetadata:\n  task: llm/v1/chat\n`,
    ),
  };
}

function onnxModel(): Zippable {
  return {
    MLmodel: strToU8(
      `flavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_session_options: null\n    onnx_version: 1.16.1\n    providers:\n    - CPUExecutionProvider\n  python_function:\n    code: null\n    data: model.onnx\n${ENV}    loader_module: mlflow.onnx\n    python_version: 3.11.9\n`,
    ),
    'model.onnx': weights(2000, 23),
    'a1b2c3d4-0000-11ef-9a1b-0242ac120002': weights(10_000, 29),
  };
}

const zipBlob = (files: Zippable, name = 'model.zip') =>
  new File([zipSync(files) as BlobPart], name);

async function storeSnapshot(db: AnyDB) {
  const counts: Record<string, number> = {};
  for (const s of ['registeredModels', 'modelVersions', 'modelFiles', 'blobFiles', 'blobChunks'])
    counts[s] = await db.count(s);
  return counts;
}

describe('importing the seed model shapes', () => {
  it('imports the custom Python wrapper zip and recognises the genai folder and {prompt} -> string', async () => {
    const { registry } = await fresh();
    const res = await registry.importModelZip(zipBlob(customWrapperModel(), 'phi3-wrapper.zip'), {
      name: 'phi3-onnx',
    });
    expect(res.version.version).toBe(1);
    expect(res.version.source).toBe('runs:/0a1b2c3d4e5f40718293a4b5c6d7e8f9/phi3-mini-onnx-model');
    expect(res.servable).toEqual({
      kind: 'prompt',
      layout: 'genai',
      artifactName: 'phi3-mini-onnx',
      root: 'artifacts/cpu-int4-rtn-block-32-acc-level-4/',
      files: {
        genaiConfig: 'artifacts/cpu-int4-rtn-block-32-acc-level-4/genai_config.json',
        model:
          'artifacts/cpu-int4-rtn-block-32-acc-level-4/phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx',
        graphs: [
          'artifacts/cpu-int4-rtn-block-32-acc-level-4/phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx',
        ],
        externalData: [
          'artifacts/cpu-int4-rtn-block-32-acc-level-4/phi3-mini-4k-instruct-cpu-int4-rtn-block-32-acc-level-4.onnx.data',
        ],
        tokenizer: 'artifacts/cpu-int4-rtn-block-32-acc-level-4/tokenizer.json',
        tokenizerConfig: 'artifacts/cpu-int4-rtn-block-32-acc-level-4/tokenizer_config.json',
      },
    });
    const details = await registry.getModelVersionDetails('phi3-onnx', 1);
    expect(isPromptToStringSignature(details.mlmodel?.signature)).toBe(true);
    expect(details.inputExample).toEqual({
      type: 'dataframe',
      columns: ['prompt'],
      data: [['<|user|>Hi<|end|><|assistant|>']],
    });
    expect(details.files).toHaveLength(11);
    expect(details.version.origin).toEqual({
      kind: 'zip',
      fileName: 'phi3-wrapper.zip',
      size: expect.any(Number),
    });
  });

  it('imports the transformers llm/v1/chat model with ONNX web weights, nested in a top-level folder', async () => {
    const { registry } = await fresh();
    const nested = Object.fromEntries(
      Object.entries(chatTransformersModel()).map(([k, v]) => [`phi3-mlflow-model/${k}`, v]),
    );
    const res = await registry.importModelZip(zipBlob(nested), { name: 'phi3-chat' });
    expect(res.root).toBe('phi3-mlflow-model/');
    expect(res.servable).toMatchObject({
      kind: 'chat',
      layout: 'web',
      task: 'llm/v1/chat',
      root: 'model/',
      sourceModelName: 'microsoft/Phi-3-mini-4k-instruct',
      files: {
        model: 'model/onnx/model_q4f16.onnx',
        graphs: ['model/onnx/model_q4f16.onnx', 'model/onnx/model_q4.onnx'],
        externalData: ['model/onnx/model_q4f16.onnx_data'],
        config: 'model/config.json',
        generationConfig: 'model/generation_config.json',
        tokenizer: 'components/tokenizer/tokenizer.json',
        tokenizerConfig: 'components/tokenizer/tokenizer_config.json',
      },
    });
    const details = await registry.getModelVersionDetails('phi3-chat', 1);
    expect(isChatSignature(details.mlmodel?.signature)).toBe(true);
    expect(details.files.map((f) => f.path)).toContain('MLmodel');
  });

  it('imports a reference-only chat model and an onnx-flavor model', async () => {
    const { registry } = await fresh();
    const ref = await registry.importModelZip(zipBlob(referenceOnlyChatModel()), {
      name: 'phi3-ref',
    });
    expect(ref.servable).toEqual({
      kind: 'chat',
      layout: 'reference',
      root: '',
      files: {},
      task: 'llm/v1/chat',
      sourceModelName: 'microsoft/Phi-3-mini-4k-instruct',
      sourceModelRevision: '0a67737cc96d2554230f90338b163bc6380a2a85',
    });
    const onnx = await registry.importModelZip(zipBlob(onnxModel()), { name: 'tiny-onnx' });
    expect(onnx.servable).toEqual({
      kind: 'onnx',
      layout: 'onnx',
      root: '',
      files: {
        model: 'model.onnx',
        graphs: ['model.onnx'],
        externalData: ['a1b2c3d4-0000-11ef-9a1b-0242ac120002'],
      },
    });
  });

  it('imports a model folder', async () => {
    const { registry } = await fresh();
    const files = Object.entries(onnxModel()).map(([path, v]) => ({
      file: new Blob([(Array.isArray(v) ? v[0] : v) as BlobPart]),
      path: `my-model/${path}`,
    }));
    const res = await registry.importModelFolder(files, { name: 'from-folder' });
    expect(res.version.origin).toMatchObject({ kind: 'folder', name: 'my-model' });
    expect(res.servable?.kind).toBe('onnx');
  });

  it('numbers re-imports as new versions of the same model', async () => {
    const { registry } = await fresh();
    await registry.importModelZip(zipBlob(onnxModel()), { name: 'm' });
    const second = await registry.importModelZip(zipBlob(onnxModel()), { name: 'm' });
    expect(second.version.version).toBe(2);
  });
});

describe('export gives back the same files', () => {
  it('exports a version as an MLflow model zip whose files are byte-identical, and re-imports it', async () => {
    const { registry } = await fresh();
    const original = customWrapperModel();
    await registry.importModelZip(zipBlob(original), { name: 'phi3-onnx' });
    const exported = await registry.exportModelVersion('phi3-onnx', 1);
    const files = unzipSync(new Uint8Array(await exported.arrayBuffer()));
    expect(Object.keys(files).sort()).toEqual(Object.keys(original).sort());
    for (const [path, v] of Object.entries(original)) {
      const bytes = (Array.isArray(v) ? v[0] : v) as Uint8Array;
      expect(Buffer.compare(files[path]!, bytes), path).toBe(0);
    }
    const again = await registry.importModelZip(new File([exported], 'export.zip'), {
      name: 'copy',
    });
    expect(again.servable).toEqual((await registry.getModelVersion('phi3-onnx', 1)).servable);
  });
});

describe('refusing bad model archives, leaving the store unchanged', () => {
  const cases: [string, () => Blob, (e: unknown) => void][] = [
    [
      'path traversal',
      () => zipBlob({ ...onnxModel(), '../../evil.sh': strToU8('rm -rf') }),
      (e) => expect(e).toBeInstanceOf(UnsafePathError),
    ],
    [
      'a bomb-like ratio',
      () => zipBlob({ ...onnxModel(), 'zeros.bin': [new Uint8Array(8 * 2 ** 20), { level: 9 }] }),
      (e) => expect((e as ArchiveLimitError).limit).toBe('compression-ratio'),
    ],
    [
      'not a zip',
      () => new File(['hello'], 'notes.txt'),
      (e) => expect(e).toBeInstanceOf(NotAZipError),
    ],
    [
      'a truncated zip',
      () => {
        const b = zipSync(onnxModel());
        return new File([b.subarray(0, b.length - 100) as BlobPart], 'cut.zip');
      },
      (e) => expect(e).toBeInstanceOf(TruncatedArchiveError),
    ],
    [
      'no MLmodel',
      () => zipBlob({ 'model.onnx': weights(10, 1) }),
      (e) => {
        expect(e).toBeInstanceOf(ModelImportError);
        expect((e as Error).message).toMatch(/no MLmodel file was found/);
      },
    ],
    [
      'MLmodel that is not YAML',
      () => zipBlob({ MLmodel: strToU8('flavors:\n  onnx: [unclosed\n') }),
      (e) => {
        expect(e).toBeInstanceOf(ModelImportError);
        expect((e as Error).message).toMatch(/^MLmodel:\d+: not valid YAML/);
      },
    ],
    [
      'MLmodel with no flavor the app reads',
      () => zipBlob({ MLmodel: strToU8('flavors:\n  sklearn:\n    pickled_model: model.pkl\n') }),
      (e) => expect((e as Error).message).toMatch(/no flavor the app can read; found sklearn/),
    ],
    [
      'a pyfunc artifact that is missing',
      () => {
        const m = customWrapperModel();
        for (const k of Object.keys(m)) if (k.startsWith('artifacts/')) delete m[k];
        return zipBlob(m);
      },
      (e) => expect((e as Error).message).toMatch(/artifact 'phi3-mini-onnx' points at/),
    ],
    [
      'a corrupt entry (found while writing)',
      () => {
        const b = zipSync({ ...onnxModel(), 'big.bin': [weights(300_000, 31), { level: 0 }] });
        b[b.length - 5000] = b[b.length - 5000]! ^ 0xff;
        return new File([b as BlobPart], 'bad.zip');
      },
      (e) => expect((e as Error).name).toBe('CorruptArchiveError'),
    ],
  ];

  it.each(cases)('refuses %s', async (_label, make, check) => {
    const { db, registry } = await fresh();
    await registry.importModelZip(zipBlob(referenceOnlyChatModel()), { name: 'existing' });
    const before = await storeSnapshot(db);
    const err = await registry
      .importModelZip(make(), { name: 'new-model' })
      .catch((e: unknown) => e);
    check(err);
    expect(await storeSnapshot(db)).toEqual(before);
    await expect(registry.getRegisteredModel('new-model')).rejects.toBeInstanceOf(MlflowError);
  });

  it('rolls back when the write is cancelled midway', async () => {
    const { db, registry } = await fresh();
    const before = await storeSnapshot(db);
    const ctl = new AbortController();
    const err = await registry
      .importModelZip(zipBlob(customWrapperModel()), {
        name: 'cancelled',
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.phase === 'writing' && p.bytesWritten > 1000) ctl.abort();
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(await storeSnapshot(db)).toEqual(before);
  });
});
