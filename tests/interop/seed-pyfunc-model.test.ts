// The seed's "Custom Python Wrapper": a python_function model logged by real MLflow whose
// `phi3-mini-onnx` artifact is an onnxruntime-genai folder. The app imports it, exports it so
// that MLflow loads it unchanged, and answers a prompt with exactly the text that
// mlflow.pyfunc.load_model(...).predict gives on onnxruntime-genai (greedy, max_length 300).
// Logged by both venvs: MLflow 3.x (every prompt, token by token) and one late 2.x (import,
// signature and input example, the export read back by 2.x, and the seed's example prompt).
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
  type Flavour,
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
  saved_input_example_info: { type: string; artifact_path: string; [key: string]: unknown };
  run_id: string;
  mlflow_version: string;
}

interface Logged {
  model_dir: string;
  run_id: string;
  inspect: Inspected;
}

/** The seed's example prompt (the input example the wrapper is logged with). */
const EXAMPLE_PROMPT = PROMPTS[0]!;

/**
 * Both venvs log the wrapper as soon as the file starts (two Python processes side by side);
 * each describe below waits for its own. MLflow 3.x downloads the logged model into the folder it
 * is given, 2.x into a subfolder named after the artifact path: the script says where.
 */
const logging = new Map<Flavour, Promise<Logged>>();
beforeAll(async () => {
  const tiny = await ensureTinyPhi3();
  for (const flavour of ['mlflow3', 'mlflow2'] as const) {
    if (!PY[flavour]) continue;
    const dir = tempDir(`seed-pyfunc-${flavour}`);
    const p = runPythonJson<Logged>(flavour, 'seed_models.py', [
      'log-pyfunc-inspect',
      fileUri(join(dir, 'mlruns')),
      tiny.genai,
      join(dir, 'model'),
    ]);
    // Awaited by its describe; a failure is reported there, not as an unhandled rejection here.
    p.catch(() => undefined);
    logging.set(flavour, p);
  }
});

const VENVS = [
  { flavour: 'mlflow3', version: 'MLflow 3.x' },
  { flavour: 'mlflow2', version: 'MLflow 2.x' },
] as const;

for (const { flavour, version } of VENVS) {
  describe.skipIf(!PY[flavour])(`the seed custom pyfunc wrapper logged by ${version}`, () => {
    let modelDir = '';
    let original: Inspected;
    let db: AnyDB;
    let imported: ImportedModel;
    /** What pyfunc predict gives for the seed's example prompt on the app's export. */
    let exportedPrediction: string | undefined;

    beforeAll(async () => {
      const logged = await logging.get(flavour)!;
      modelDir = logged.model_dir;
      original = logged.inspect;
      db = await openDatabase({ name: `interop-seed-pyfunc-${flavour}` });
    });

    it('is recognised on import as a {prompt} -> string model served from its genai artifact', async () => {
      expect(original.artifacts).toEqual({ 'phi3-mini-onnx': ARTIFACT });
      expect(original.mlflow_version.split('.')[0]).toBe(flavour === 'mlflow3' ? '3' : '2');
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
      // The input example as Model.load reads it: {"prompt": <the seed's prompt>}.
      expect(original.input_example).toEqual({ prompt: EXAMPLE_PROMPT });
      expect(imported.mlmodel.savedInputExampleInfo).toEqual(original.saved_input_example_info);
      expect(imported.inputExample).toEqual({
        type: original.saved_input_example_info.type,
        value: original.input_example,
      });
      expect(imported.mlmodel.runId).toBe(original.run_id);
    });

    it('exports a zip that mlflow.models.Model.load and mlflow.pyfunc.load_model read unchanged', async () => {
      const zip = await exportModelVersionZip(db, 'phi3-wrapper', imported.version.version);
      const bytes = new Uint8Array(await zip.arrayBuffer());
      const zipPath = join(tempDir(`seed-pyfunc-export-${flavour}`), 'exported.zip');
      writeFileSync(zipPath, bytes);

      // Every file comes back byte for byte.
      const unzipped = unzipSync(bytes);
      const originalFiles = readTree(modelDir);
      expect(Object.keys(unzipped).sort()).toEqual([...originalFiles.keys()].sort());
      for (const [path, b] of originalFiles) {
        expect(sha256Hex(unzipped[path]!), path).toBe(sha256Hex(b));
      }

      if (flavour === 'mlflow3') {
        const exported = await runPythonJson<Inspected>(flavour, 'seed_models.py', [
          'inspect',
          zipPath,
        ]);
        expect(exported).toEqual(original);
      } else {
        // One 2.x interpreter both inspects the export and predicts on it (compared below).
        const r = await runPythonJson<{ inspect: Inspected; predictions: string[] }>(
          flavour,
          'seed_models.py',
          ['inspect-predict', zipPath, EXAMPLE_PROMPT],
        );
        expect(r.inspect).toEqual(original);
        exportedPrediction = r.predictions[0];
      }
    });

    if (flavour === 'mlflow2')
      it("answers the seed's example prompt with the text 2.x's pyfunc predict gives on the export", async () => {
        expect(exportedPrediction, 'the export test ran first').toBeTypeOf('string');
        expect(exportedPrediction!.length).toBeGreaterThan(0);
        const files = diskModelFiles(join(modelDir, ARTIFACT));
        const runtime = createOrtRuntime(ortNode as unknown as OrtModule, files, {
          backend: 'cpu',
          threads: 1,
          executionProviders: ['cpu'],
          preferPaths: true,
        });
        const engine = await loadGenaiEngine(files, runtime);
        try {
          const generator = new LocalGenerator(engine, async () => undefined);
          const text = await predictPrompt(generator, { prompt: [EXAMPLE_PROMPT] });
          expect(text).toBe(exportedPrediction);
        } finally {
          await engine.dispose();
        }
      });

    if (flavour === 'mlflow3') {
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
          const python = await runPythonJson<{ predictions: string[] }>(
            'mlflow3',
            'seed_models.py',
            ['predict', modelDir, ...PROMPTS],
          );
          // pyfunc predict and onnxruntime-genai alone agree: the wrapper adds nothing.
          expect(python.predictions).toEqual(genai.map((g) => g.text));
          const generator = new LocalGenerator(engine, async () => undefined);
          for (const [n, prompt] of PROMPTS.entries()) {
            const text = await predictPrompt(generator, { prompt: [prompt] });
            expect(text, `prompt ${n}: ${JSON.stringify(prompt)}`).toBe(python.predictions[n]);
          }
        });
      });
    }
  });
}
