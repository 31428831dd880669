// The seed's "Transformer Pipeline" shape: a transformers model saved with task="llm/v1/chat"
// (built once with real MLflow by scripts/interop/make_chat_fixture.py and committed, since
// installing torch in CI is impractical), once by MLflow 3.x and once by MLflow 2.x. The app
// recognises each as a chat model and exports it so that the MLflow that wrote it sees the same
// flavors, signature and input example through mlflow.models.Model.load.
import 'fake-indexeddb/auto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { importModelFolder } from '../../src/lib/services/model-import.ts';
import { exportModelVersionZip } from '../../src/lib/services/model-export.ts';
import { signatureToStrings } from '../../src/lib/mlflow/signature.ts';
import { folderFiles } from './support/model-files.ts';
import {
  PY,
  ROOT,
  readTree,
  removeTempDirs,
  runPythonJson,
  sha256Hex,
  tempDir,
} from './support/python.ts';

const FIXTURES = [
  { flavour: 'mlflow3', version: 'MLflow 3.x', folder: 'transformers-chat' },
  { flavour: 'mlflow2', version: 'MLflow 2.x', folder: 'transformers-chat-mlflow2' },
] as const;

afterAll(removeTempDirs);

interface Inspected {
  flavors: Record<string, Record<string, unknown>>;
  signature: { inputs: string; outputs: string; params: string | null } | null;
  metadata: Record<string, unknown> | null;
  input_example: unknown;
  mlflow_version: string;
}

describe('the seed transformers llm/v1/chat model', () => {
  for (const { flavour, version, folder } of FIXTURES) {
    it.skipIf(!PY[flavour])(
      `written by ${version}: imports as a chat model and exports what its Model.load reads the same`,
      async () => {
        const fixture = join(ROOT, 'tests', 'fixtures', 'mlflow', folder);
        const original = await runPythonJson<Inspected>(flavour, 'inspect_mlmodel.py', [fixture]);
        expect(original.flavors.transformers).toMatchObject({
          inference_task: 'llm/v1/chat',
          task: 'text-generation',
          source_model_name: 'microsoft/Phi-3-mini-4k-instruct',
        });
        expect(String(original.mlflow_version).split('.')[0]).toBe(
          flavour === 'mlflow3' ? '3' : '2',
        );

        const db = await openDatabase({ name: `interop-transformers-chat-${flavour}` });
        const imported = await importModelFolder(db, folderFiles(fixture), { name: 'phi3-chat' });
        expect(imported.servable).toMatchObject({
          kind: 'chat',
          task: 'llm/v1/chat',
          sourceModelName: 'microsoft/Phi-3-mini-4k-instruct',
        });
        // The app reads the signature MLflow wrote, field for field.
        expect(signatureToStrings(imported.mlmodel.signature!)).toEqual(original.signature);
        expect(
          (imported.mlmodel.signature!.inputs as Array<{ name?: string }>).map((c) => c.name),
        ).toContain('messages');
        // And the input example as Model.load reads it.
        expect(imported.inputExample).toEqual({
          type: 'json_object',
          value: original.input_example,
        });

        const zip = await exportModelVersionZip(db, 'phi3-chat', imported.version.version);
        const bytes = new Uint8Array(await zip.arrayBuffer());
        const unzipped = unzipSync(bytes);
        const files = readTree(fixture);
        expect(Object.keys(unzipped).sort()).toEqual([...files.keys()].sort());
        for (const [path, b] of files) expect(sha256Hex(unzipped[path]!), path).toBe(sha256Hex(b));

        const zipPath = join(tempDir(`transformers-chat-${flavour}`), 'exported.zip');
        writeFileSync(zipPath, bytes);
        const exported = await runPythonJson<Inspected>(flavour, 'inspect_mlmodel.py', [zipPath]);
        expect(exported).toEqual(original);
      },
    );
  }
});
