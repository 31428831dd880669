import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, zipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';
import { onStoreChange, type StoreChange } from '../../src/lib/services/events.ts';
import { writeBlob } from '../../src/lib/store/blobs.ts';

let n = 0;
async function fresh(): Promise<{ db: AnyDB; registry: RegistryClient }> {
  const db = await openDatabase({ name: `registry-${n++}` });
  return { db, registry: new RegistryClient(db) };
}

const ONNX_MODEL = {
  MLmodel: strToU8(
    'flavors:\n  onnx:\n    data: model.onnx\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n',
  ),
  'model.onnx': new Uint8Array(100).fill(7),
};
const zip = () => new File([zipSync(ONNX_MODEL) as BlobPart], 'm.zip');

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.catch((x: unknown) => x);
  expect(e).toBeInstanceOf(MlflowError);
  return (e as MlflowError).errorCode;
}

describe('registered models', () => {
  it('creates, describes, tags and refuses duplicates as MLflow does', async () => {
    const { registry } = await fresh();
    const seen: StoreChange[] = [];
    const off = onStoreChange((c) => seen.push(c));
    await registry.createRegisteredModel('phi3', {
      description: 'Phi-3 mini',
      tags: { team: 'nlp' },
    });
    off();
    expect(seen).toContainEqual({ kind: 'registry', id: 'phi3' });
    const e = await registry.createRegisteredModel('phi3').catch((x: unknown) => x);
    expect((e as MlflowError).errorCode).toBe('RESOURCE_ALREADY_EXISTS');
    expect((e as Error).message).toBe('Registered Model (name=phi3) already exists.');
    await registry.setRegisteredModelTag('phi3', 'task', 'chat');
    await registry.deleteRegisteredModelTag('phi3', 'team');
    await registry.updateRegisteredModel('phi3', 'New text');
    const m = await registry.getRegisteredModel('phi3');
    expect(m).toMatchObject({
      name: 'phi3',
      description: 'New text',
      tags: { task: 'chat' },
      aliases: {},
    });
    expect(await codeOf(registry.getRegisteredModel('nope'))).toBe('RESOURCE_DOES_NOT_EXIST');
    expect(await codeOf(registry.createRegisteredModel('a/b'))).toBe('INVALID_PARAMETER_VALUE');
  });

  it('searches by name patterns and tags, with pages', async () => {
    const { registry } = await fresh();
    for (const [name, task] of [
      ['phi3-chat', 'chat'],
      ['phi3-onnx', 'prompt'],
      ['Mistral', 'chat'],
    ] as const) {
      await registry.createRegisteredModel(name, { tags: { task } });
    }
    const names = async (filter: string) =>
      (await registry.searchRegisteredModels({ filter })).models.map((m) => m.name);
    expect(await names("name LIKE 'phi3%'")).toEqual(['phi3-chat', 'phi3-onnx']);
    expect(await names("name ILIKE 'mis%'")).toEqual(['Mistral']);
    expect(await names("name LIKE 'mis%'")).toEqual([]);
    expect(await names("tags.task = 'chat'")).toEqual(['Mistral', 'phi3-chat']);
    expect(await names("name LIKE '%phi%' AND tags.`task` != 'chat'")).toEqual(['phi3-onnx']);
    expect(await names("name = 'phi3-chat'")).toEqual(['phi3-chat']);
    const page1 = await registry.searchRegisteredModels({ maxResults: 2 });
    expect(page1.models).toHaveLength(2);
    const page2 = await registry.searchRegisteredModels({
      maxResults: 2,
      pageToken: page1.nextPageToken!,
    });
    expect(page2.models.map((m) => m.name)).toEqual(['phi3-onnx']);
    expect(page2.nextPageToken).toBeUndefined();
    expect(await codeOf(registry.searchRegisteredModels({ filter: "owner = 'x'" }))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
  });
});

describe('versions, aliases and stages', () => {
  it('numbers versions per model and moves an alias when it is assigned again', async () => {
    const { registry } = await fresh();
    await registry.importModelZip(zip(), { name: 'm' });
    await registry.importModelZip(zip(), { name: 'm' });
    await registry.importModelZip(zip(), { name: 'other' });
    expect((await registry.listModelVersions('m')).map((v) => v.version)).toEqual(['2', '1']);
    expect((await registry.getModelVersion('other', 1)).version).toBe('1');

    await registry.setRegisteredModelAlias('m', 'champion', 1);
    expect((await registry.getModelVersionByAlias('m', 'champion')).version).toBe('1');
    await registry.setRegisteredModelAlias('m', 'champion', '2');
    expect((await registry.getRegisteredModel('m')).aliases).toEqual({ champion: '2' });
    expect((await registry.getModelVersion('m', 2)).aliases).toEqual(['champion']);
    expect((await registry.getModelVersion('m', 1)).aliases).toEqual([]);
    expect(await codeOf(registry.setRegisteredModelAlias('m', 'latest', 1))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
    expect(await codeOf(registry.setRegisteredModelAlias('m', 'v2', 1))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
    expect(await codeOf(registry.setRegisteredModelAlias('m', 'x', 9))).toBe(
      'RESOURCE_DOES_NOT_EXIST',
    );
    // A missing alias is INVALID_PARAMETER_VALUE in MLflow, not 404.
    expect(await codeOf(registry.getModelVersionByAlias('m', 'none'))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
  });

  it('transitions stages, archiving the others on request, and answers latest versions per stage', async () => {
    const { registry } = await fresh();
    for (let i = 0; i < 3; i++) await registry.importModelZip(zip(), { name: 'm' });
    await registry.transitionModelVersionStage('m', 1, 'production');
    await registry.transitionModelVersionStage('m', 2, 'Production');
    expect((await registry.getModelVersion('m', 1)).currentStage).toBe('Production');
    await registry.transitionModelVersionStage('m', 3, 'Production', true);
    expect((await registry.listModelVersions('m')).map((v) => v.currentStage)).toEqual([
      'Production',
      'Archived',
      'Archived',
    ]);
    expect((await registry.getLatestVersions('m', ['Archived'])).map((v) => v.version)).toEqual([
      '2',
    ]);
    expect(
      (await registry.getLatestVersions('m')).map((v) => `${v.version}:${v.currentStage}`),
    ).toEqual(['2:Archived', '3:Production']);
    const e = await registry.transitionModelVersionStage('m', 1, 'Prod').catch((x: unknown) => x);
    expect((e as Error).message).toBe(
      'Invalid Model Version stage: Prod. Value must be one of None, Staging, Production, Archived.',
    );
  });

  it('renames a model with its versions and aliases', async () => {
    const { registry } = await fresh();
    await registry.importModelZip(zip(), { name: 'old' });
    await registry.setRegisteredModelAlias('old', 'champion', 1);
    await registry.renameRegisteredModel('old', 'new');
    expect(await codeOf(registry.getRegisteredModel('old'))).toBe('RESOURCE_DOES_NOT_EXIST');
    expect((await registry.getModelVersionByAlias('new', 'champion')).name).toBe('new');
    const details = await registry.getModelVersionDetails('new', 1);
    expect(details.files.map((f) => f.path)).toEqual(['MLmodel', 'model.onnx']);
    await registry.createRegisteredModel('taken');
    expect(await codeOf(registry.renameRegisteredModel('new', 'taken'))).toBe(
      'RESOURCE_ALREADY_EXISTS',
    );
  });

  it('deleting a version drops its aliases and files; deleting a model cascades', async () => {
    const { db, registry } = await fresh();
    await registry.importModelZip(zip(), { name: 'm' });
    await registry.importModelZip(zip(), { name: 'm' });
    await registry.setRegisteredModelAlias('m', 'champion', 2);
    await registry.deleteModelVersion('m', 2);
    expect((await registry.getRegisteredModel('m')).aliases).toEqual({});
    expect(await db.count('modelFiles')).toBe(2);
    expect(await db.count('blobFiles')).toBe(2);
    // Versions are max + 1, as in MLflow: with version 2 deleted, the next is 2 again.
    await registry.importModelZip(zip(), { name: 'm' });
    expect((await registry.listModelVersions('m')).map((v) => v.version)).toEqual(['2', '1']);
    await registry.deleteRegisteredModel('m');
    expect(await db.count('modelVersions')).toBe(0);
    expect(await db.count('modelFiles')).toBe(0);
    expect(await db.count('blobFiles')).toBe(0);
  });

  it('searches versions by name, run id and tags', async () => {
    const { registry } = await fresh();
    await registry.importModelZip(zip(), { name: 'a', tags: { quality: 'good' } });
    await registry.importModelZip(zip(), { name: 'b' });
    await registry.setModelVersionTag('b', 1, 'quality', 'bad');
    const found = await registry.searchModelVersions({ filter: "tags.quality = 'good'" });
    expect(found.versions.map((v) => `${v.name}/${v.version}`)).toEqual(['a/1']);
    expect((await registry.searchModelVersions({ filter: "name = 'b'" })).versions).toHaveLength(1);
  });
});

describe('registering from other places', () => {
  it('registers a run artifact folder as a copy, and a Hugging Face id as a reference', async () => {
    const { db, registry } = await fresh();
    const runId = 'abc123';
    for (const [path, bytes] of Object.entries(ONNX_MODEL)) {
      const blobId = `art-${path}`;
      await writeBlob(db, blobId, bytes);
      await db.put('artifacts', {
        runId,
        path: `model/${path}`,
        blobId,
        size: bytes.length,
        createdAt: 0,
      });
    }
    const v = await registry.registerModelFromRun('from-run', runId, 'model');
    expect(v).toMatchObject({
      version: '1',
      source: 'runs:/abc123/model',
      runId,
      origin: { kind: 'run', runId, artifactPath: 'model' },
    });
    expect(v.servable?.kind).toBe('onnx');
    expect(await codeOf(registry.registerModelFromRun('x', runId, 'nothing-here'))).toBe(
      'INVALID_PARAMETER_VALUE',
    );

    const hf = await registry.registerHuggingFaceModel(
      'phi35',
      'onnx-community/Phi-3.5-mini-instruct-onnx-web',
    );
    expect(hf).toMatchObject({
      source: 'hf:/onnx-community/Phi-3.5-mini-instruct-onnx-web',
      origin: { kind: 'huggingface' },
    });
    expect(hf.servable).toMatchObject({ kind: 'chat', layout: 'reference' });
    expect(await codeOf(registry.registerHuggingFaceModel('bad', 'not an id'))).toBe(
      'INVALID_PARAMETER_VALUE',
    );
  });
});

describe('the whole registry as one archive', () => {
  it('exports every model, version, alias and tag and imports them into an empty browser', async () => {
    const { registry } = await fresh();
    await registry.importModelZip(zip(), { name: 'workshop', description: 'for day 1' });
    await registry.importModelZip(zip(), { name: 'workshop' });
    await registry.setRegisteredModelTag('workshop', 'day', '1');
    await registry.setRegisteredModelAlias('workshop', 'champion', 2);
    await registry.transitionModelVersionStage('workshop', 2, 'Production');
    await registry.registerHuggingFaceModel('hub-ref', 'microsoft/Phi-3-mini-4k-instruct-onnx-web');
    const archive = await registry.exportRegistry();

    const other = await fresh();
    const res = await other.registry.importRegistry(new File([archive], 'registry.zip'));
    expect(res).toEqual({ models: ['hub-ref', 'workshop'], versions: 3 });
    const m = await other.registry.getRegisteredModel('workshop');
    expect(m).toMatchObject({ description: '', tags: { day: '1' }, aliases: { champion: '2' } });
    expect((await other.registry.getModelVersion('workshop', 2)).currentStage).toBe('Production');
    const details = await other.registry.getModelVersionDetails('workshop', 1);
    expect(details.mlmodelText).toBe(new TextDecoder().decode(ONNX_MODEL.MLmodel));

    // Importing again is refused as a whole: nothing is written.
    const before = await other.db.count('blobFiles');
    expect(await codeOf(other.registry.importRegistry(new File([archive], 'registry.zip')))).toBe(
      'RESOURCE_ALREADY_EXISTS',
    );
    expect(await other.db.count('blobFiles')).toBe(before);
  });
});
