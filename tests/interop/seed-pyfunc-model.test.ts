// The seed's "Custom Python Wrapper": a python_function model logged by real MLflow whose
// `phi3-mini-onnx` artifact is an onnxruntime-genai folder. The app imports it, exports it so
// that MLflow loads it unchanged, and answers a prompt with exactly the text that
// mlflow.pyfunc.load_model(...).predict gives on onnxruntime-genai (greedy, max_length 300).
import 'fake-indexeddb/auto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import * as ortNode from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { importModelFolder, type ImportedModel } from '../../src/lib/services/model-import.ts';
import { exportModelVersionZip } from '../../src/lib/services/model-export.ts';
import { isPromptToStringSignature, signatureToStrings } from '../../src/lib/mlflow/signature.ts';
import { loadGenaiEngine } from '../../src/lib/inference/engines/ort-genai.ts';
import { createOrtRuntime, type OrtModule } from '../../src/lib/inference/engines/ort-runtime.ts';
import { LocalGenerator } from '../../src/lib/inference/local.ts';
import { PROMPT_WRAPPER_DEFAULTS, predictPrompt } from '../../src/lib/inference/adapters.ts';
import { promptIds, type Engine } from '../../src/lib/inference/engine.ts';
import { generate } from '../../src/lib/inference/generate.ts';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';
import { diskModelFiles, folderFiles } from './support/model-files.ts';
import {
  PY,
  fileUri,
  readTree,
  removeTempDirs,
  runPythonJson,
  sha256Hex,
  tempDir,
} from './support/python.ts';

afterAll(removeTempDirs);

const ARTIFACT = 'artifacts/cpu-int4-rtn-block-32-acc-level-4';
const PROMPTS = [
  '<|system|>You are a helpful assistant.<|end|><|user|>Tell me a joke about MLflow.<|end|><|assistant|>',
  '<|user|>\nWhat is the capital of France?<|end|>\n<|assistant|>\n',
  'Plain text without any chat markup.',
];

interface GenaiRun {
  prompt_ids: number[];
  new_ids: number[];
  text: string;
}

interface Inspected {
  flavors: string[];
  loader_module: string;
  artifacts: Record<string, string>;
  signature: { inputs: string; outputs: string; params: string | null };
  input_names: string[];
  input_types: string[];
  input_example: unknown;
  run_id: string;
}

const available = Boolean(PY.mlflow3);

describe.skipIf(!available)('the seed custom pyfunc wrapper around onnxruntime-genai', () => {
  let dir = '';
  let modelDir = '';
  let original: Inspected;
  let db: AnyDB;
  let imported: ImportedModel;

  beforeAll(async () => {
    const tiny = await ensureTinyPhi3();
    dir = tempDir('seed-pyfunc');
    modelDir = join(dir, 'model');
    await runPythonJson('mlflow3', 'seed_models.py', [
      'log-pyfunc',
      fileUri(join(dir, 'mlruns')),
      tiny.genai,
      modelDir,
    ]);
    original = await runPythonJson<Inspected>('mlflow3', 'seed_models.py', ['inspect', modelDir]);
    db = await openDatabase({ name: 'interop-seed-pyfunc' });
  });

  it('is recognised on import as a {prompt} -> string model served from its genai artifact', async () => {
    expect(original.artifacts).toEqual({ 'phi3-mini-onnx': ARTIFACT });
    imported = await importModelFolder(db, folderFiles(modelDir), { name: 'phi3-wrapper' });

    expect(imported.servable).toMatchObject({
      kind: 'prompt',
      layout: 'genai',
      artifactName: 'phi3-mini-onnx',
      root: `${ARTIFACT}/`,
    });
    expect(imported.servable?.files.genaiConfig).toBe(`${ARTIFACT}/genai_config.json`);
    const sig = imported.mlmodel.signature;
    expect(isPromptToStringSignature(sig)).toBe(true);
    // The signature as MLflow itself serialises it, field for field.
    expect(signatureToStrings(sig!)).toEqual(original.signature);
    expect(original.input_names).toEqual(['prompt']);
    expect(imported.mlmodel.runId).toBe(original.run_id);
  });

  it('exports a zip that mlflow.models.Model.load and mlflow.pyfunc.load_model read unchanged', async () => {
    const zip = await exportModelVersionZip(db, 'phi3-wrapper', imported.version.version);
    const bytes = new Uint8Array(await zip.arrayBuffer());
    const zipPath = join(dir, 'exported.zip');
    writeFileSync(zipPath, bytes);

    // Every file comes back byte for byte.
    const unzipped = unzipSync(bytes);
    const originalFiles = readTree(modelDir);
    expect(Object.keys(unzipped).sort()).toEqual([...originalFiles.keys()].sort());
    for (const [path, b] of originalFiles) {
      expect(sha256Hex(unzipped[path]!), path).toBe(sha256Hex(b));
    }

    const exported = await runPythonJson<Inspected>('mlflow3', 'seed_models.py', [
      'inspect',
      zipPath,
    ]);
    expect(exported).toEqual(original);
  });

  describe('the same prompt gives the same text in MLflow and in the app', () => {
    let genai: GenaiRun[];
    let engine: Engine;

    beforeAll(async () => {
      const folder = join(modelDir, ARTIFACT);
      genai = (
        await runPythonJson<{ results: GenaiRun[] }>('mlflow3', 'seed_models.py', [
          'genai-tokens',
          folder,
          ...PROMPTS,
        ])
      ).results;
      const files = diskModelFiles(folder);
      const runtime = createOrtRuntime(ortNode as unknown as OrtModule, files, {
        backend: 'cpu',
        threads: 1,
        executionProviders: ['cpu'],
        preferPaths: true,
      });
      engine = await loadGenaiEngine(files, runtime);
    });
    afterAll(async () => engine?.dispose());

    it('from the prompt ids onnxruntime-genai encoded, generates the same new token ids (greedy, max_length 300)', async () => {
      for (const [n, g] of genai.entries()) {
        const r = await generate(engine.lm, {
          tokenizer: engine.tokenizer,
          promptIds: g.prompt_ids,
          params: PROMPT_WRAPPER_DEFAULTS,
          eosIds: engine.eosIds,
        });
        expect(g.new_ids.length, `prompt ${n}`).toBeGreaterThan(0);
        expect(r.choices[0]!.tokenIds, `prompt ${n}: new token ids`).toEqual(g.new_ids);
      }
    });

    it('decodes those new token ids into the text onnxruntime-genai decodes', () => {
      for (const [n, g] of genai.entries()) {
        expect(engine.tokenizer.decode(g.new_ids), `prompt ${n}`).toBe(g.text);
      }
    });

    it('tokenizes each prompt into the ids onnxruntime-genai encodes', () => {
      for (const [n, g] of genai.entries()) {
        const ids = promptIds(engine, { kind: 'prompt', prompt: PROMPTS[n]! });
        expect(ids, `prompt ${n}: ${JSON.stringify(PROMPTS[n])}`).toEqual(g.prompt_ids);
      }
    });

    it('answers {prompt} through the prompt signature with the text pyfunc predict gives', async () => {
      const python = await runPythonJson<{ predictions: string[] }>('mlflow3', 'seed_models.py', [
        'predict',
        modelDir,
        ...PROMPTS,
      ]);
      // pyfunc predict and onnxruntime-genai alone agree: the wrapper adds nothing.
      expect(python.predictions).toEqual(genai.map((g) => g.text));
      const generator = new LocalGenerator(engine, async () => undefined);
      for (const [n, prompt] of PROMPTS.entries()) {
        const text = await predictPrompt(generator, { prompt: [prompt] });
        expect(text, `prompt ${n}: ${JSON.stringify(prompt)}`).toBe(python.predictions[n]);
      }
    });
  });
});
