import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { zipSync } from 'fflate';
import { previewModelFolder, previewModelZip } from '../../src/lib/services/model-preview.ts';

const MODELS = new URL('../browser/support/models/', import.meta.url);
const mlmodel = (name: string): Uint8Array<ArrayBuffer> =>
  new Uint8Array(readFileSync(new URL(name, MODELS)));
const text = (s: string) => new TextEncoder().encode(s);

function zipFile(name: string, files: Record<string, Uint8Array>): File {
  return new File([zipSync(files)], name, { type: 'application/zip' });
}

describe('previewing a model before import', () => {
  it('names an onnx model after its file when MLflow wrote the generic artifact path', async () => {
    const p = await previewModelZip(
      zipFile('iris-onnx.zip', { MLmodel: mlmodel('onnx-iris.MLmodel'), 'model.onnx': text('x') }),
    );
    expect(p).toMatchObject({
      suggestedName: 'iris-onnx',
      flavors: ['onnx', 'python_function'],
      signature: 'other',
      runId: '8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d',
      fileCount: 2,
    });
  });

  it('takes the registered name a registry download carries, over everything else', async () => {
    const p = await previewModelZip(
      zipFile('download.zip', {
        'phi/MLmodel': mlmodel('onnx-iris.MLmodel'),
        'phi/model.onnx': text('x'),
        'phi/registered_model_meta': text("model_name: iris/prod\nmodel_version: '3'\n"),
      }),
    );
    // '/' cannot be in a registered model name.
    expect(p.suggestedName).toBe('iris-prod');
  });

  it('names the chat seed after its run-relative artifact path and recognises its signature', async () => {
    const files: Record<string, Uint8Array> = {
      MLmodel: mlmodel('transformers-chat.MLmodel'),
      'model/config.json': text('{}'),
    };
    const p = await previewModelZip(zipFile('x.zip', files));
    expect(p).toMatchObject({
      suggestedName: 'phi3-mlflow-model',
      task: 'llm/v1/chat',
      signature: 'chat',
    });
  });

  it('reads a picked folder through its relative paths', async () => {
    const f = (path: string, bytes: Uint8Array<ArrayBuffer>) => {
      const file = new File([bytes], path.split('/').pop()!);
      Object.defineProperty(file, 'webkitRelativePath', { value: path });
      return file;
    };
    const p = await previewModelFolder([
      f('wrapper/MLmodel', mlmodel('pyfunc-genai.MLmodel')),
      f('wrapper/artifacts/cpu-int4-rtn-block-32-acc-level-4/genai_config.json', text('{}')),
    ]);
    expect(p).toMatchObject({ suggestedName: 'phi3-mini-onnx-model', signature: 'prompt' });
  });

  it('refuses what the import refuses, with the same error, before anything is stored', async () => {
    await expect(
      previewModelZip(
        zipFile('evil.zip', { MLmodel: mlmodel('onnx-iris.MLmodel'), '../x': text('x') }),
      ),
    ).rejects.toMatchObject({ name: 'UnsafePathError' });
    await expect(previewModelZip(new File([text('hello')], 'a.zip'))).rejects.toMatchObject({
      name: 'NotAZipError',
    });
    await expect(
      previewModelZip(zipFile('empty.zip', { 'readme.txt': text('no model here') })),
    ).rejects.toMatchObject({ name: 'ModelImportError' });
  });
});
