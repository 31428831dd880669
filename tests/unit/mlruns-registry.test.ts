import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import {
  exportMlruns,
  exportMlrunsFiles,
  importMlruns,
  type ImportProgress,
} from '../../src/lib/services/mlruns-io.ts';
import {
  MlrunsParseError,
  readMlrunsRegistry,
  registeredModelMetaYaml,
  modelVersionMetaYaml,
} from '../../src/lib/mlflow/mlruns/index.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

// Written by MLflow 3.17.2's FileStore (scripts/interop/make_mlruns_registry_fixture.py): a run with
// a model among its artifacts (saved/) and a logged model `model`; "My Model" v1 runs:/<run>/saved,
// v2 models:/m-…, v3 runs:/<run>/model (Staging, tagged), v4 deleted, v5 on s3 (not in the store),
// alias champion -> 2; "other" v1 from the logged model.
const zip = new Uint8Array(
  readFileSync(new URL('../fixtures/mlruns-registry-mlflow-3.17.zip', import.meta.url)),
);
const EXP = '616257020072782523';
const RUN = '492bedf1223147108413181155696afd';
const MODEL_ID = 'm-a8c51d6ff06e4afebc53329bfd715380';
const enc = new TextEncoder();
const dec = new TextDecoder();

let n = 0;
const freshDb = () => openDatabase({ name: `mlruns-registry-${n++}` });

function unzipToMap(bytes: Uint8Array): Map<string, Uint8Array> {
  return new Map(Object.entries(unzipSync(bytes)).filter(([k]) => !k.endsWith('/')));
}

async function counts(db: AnyDB): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of [
    'experiments',
    'runs',
    'artifacts',
    'mlrunsFiles',
    'blobFiles',
    'registeredModels',
    'modelVersions',
    'modelFiles',
  ])
    out[s] = await db.count(s);
  return out;
}

describe('reading the registry folder of an mlruns store', () => {
  it('reads models, versions, tags, aliases, stages and deleted versions', () => {
    const reg = readMlrunsRegistry(unzipToMap(zip));
    expect(reg.models.map((m) => m.name)).toEqual(['My Model', 'other']);
    const my = reg.models[0]!;
    expect(my.description).toBe('Echo *model*');
    expect(my.tags).toEqual({ team: 'vision' });
    expect(my.aliases).toEqual({ champion: 2 });
    expect(my.versions.map((v) => [v.version, v.currentStage, v.source])).toEqual([
      [1, 'None', `runs:/${RUN}/saved`],
      [2, 'None', `models:/${MODEL_ID}`],
      [3, 'Staging', `runs:/${RUN}/model`],
      [4, 'Deleted_Internal', 'file:///elsewhere/model'],
      [5, 'None', 's3://bucket/models/echo'],
    ]);
    expect(my.versions[2]!.tags).toEqual({ reviewed: 'yes' });
    expect(reg.models[1]!.versions[0]!.modelId).toBe(MODEL_ID);
    expect(reg.ignored).toEqual([]);
  });

  it('writes meta.yaml as the FileStore does (sorted keys, aliases map, nulls)', () => {
    const files = unzipToMap(zip);
    const reg = readMlrunsRegistry(files);
    const other = reg.models[1]!;
    const extras = { deployment_job_id: null, deployment_job_state: null, workspace: 'default' };
    expect(registeredModelMetaYaml(other, extras)).toBe(
      dec.decode(files.get('mlruns/models/other/meta.yaml')!),
    );
    expect(
      modelVersionMetaYaml(other.versions[0]!, {
        deployment_job_state: null,
        model_id: MODEL_ID,
        workspace: 'default',
      }),
    ).toBe(dec.decode(files.get('mlruns/models/other/version-1/meta.yaml')!));
  });

  it.each([
    [
      'mlruns/models/My Model/aliases/champion',
      '9',
      /aliases\/champion:1: alias 'champion' points at version 9, which does not exist/,
    ],
    ['mlruns/models/My Model/aliases/champion', '4', /points at version 4, which is deleted/],
    [
      'mlruns/models/My Model/version-2/meta.yaml',
      'version: 7\nname: My Model\n',
      /version-2\/meta.yaml:1: key 'version' must be the number of its folder \(2\)/,
    ],
    [
      'mlruns/models/other/meta.yaml',
      'name: someone\n',
      /other\/meta.yaml:1: name 'someone' does not match its folder 'other'/,
    ],
    [
      'mlruns/models/other/version-1/meta.yaml',
      'version: 1\ncurrent_stage: Live\n',
      /key 'current_stage' must be one of None, Staging/,
    ],
    ['mlruns/models/x/tags/a', 'v', /models\/x\/meta.yaml: missing/],
  ])('refuses %s holding %j, naming the file', (path, content, message) => {
    const files = unzipToMap(zip);
    files.set(path, enc.encode(content));
    let err: unknown;
    try {
      readMlrunsRegistry(files);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlrunsParseError);
    expect(String((err as Error).message)).toMatch(message);
  });
});

describe('importing an mlruns store with its registry', () => {
  it('lands every live version in the Model Registry, with the files of runs and logged models', async () => {
    const db = await freshDb();
    const res = await importMlruns(db, zip, { fileName: 'mlruns.zip' });
    expect(res.registeredModels).toEqual(['My Model', 'other']);
    expect(res.modelVersions).toBe(5);
    expect(res.warnings.join('\n')).toMatch(/version 5: its files \(s3:\/\/bucket\/models\/echo\)/);
    expect(res.ignored).toEqual([]);

    const r = new RegistryClient(db);
    const { models } = await r.searchRegisteredModels();
    expect(models.map((m) => m.name)).toEqual(['My Model', 'other']);
    expect(models[0]!.tags).toEqual({ team: 'vision' });
    expect(models[0]!.description).toBe('Echo *model*');
    expect((await r.listModelVersions('My Model')).map((v) => v.version)).toEqual([
      '5',
      '3',
      '2',
      '1',
    ]);
    const champion = await r.getModelVersionByAlias('My Model', 'champion');
    expect(champion.version).toBe('2');
    expect(champion.runId).toBe(RUN);

    const pathsOf = async (version: number) =>
      (await r.getModelVersionDetails('My Model', version)).files.map((f) => f.path);
    const modelFiles = [
      'MLmodel',
      'conda.yaml',
      'python_env.yaml',
      'python_model.pkl',
      'requirements.txt',
    ];
    // v1: the run's artifacts under saved/ (2.x layout).
    expect(await pathsOf(1)).toEqual(modelFiles);
    expect((await r.getModelVersion('My Model', 1)).origin).toEqual({
      kind: 'run',
      runId: RUN,
      artifactPath: 'saved',
    });
    // v2 (models:/m-…) and v3 (runs:/<run>/model in MLflow 3): the logged model's files.
    expect(await pathsOf(2)).toEqual(modelFiles);
    const v3 = await r.getModelVersionDetails('My Model', 3);
    expect(v3.files.map((f) => f.path)).toEqual(modelFiles);
    expect(v3.mlmodelText).toContain(`model_id: ${MODEL_ID}`);
    expect(v3.version.currentStage).toBe('Staging');
    expect(v3.version.tags).toEqual({ reviewed: 'yes' });
    // v5: the files are on s3, not in the store.
    expect(await pathsOf(5)).toEqual([]);
    expect((await r.getModelVersion('My Model', 5)).origin).toEqual({
      kind: 'registry-archive',
      fileName: 'mlruns.zip',
    });
    // The deleted version stays deleted.
    await expect(r.getModelVersion('My Model', 4)).rejects.toThrow(/not found/);
    // Lineage: the run's versions.
    const fromRun = await r.searchModelVersions({ filter: `run_id = '${RUN}'` });
    expect(fromRun.versions.map((v) => `${v.name}/${v.version}`).sort()).toEqual([
      'My Model/1',
      'My Model/2',
      'My Model/3',
      'other/1',
    ]);
  });

  it('exports the registry back byte for byte when nothing changed', async () => {
    const db = await freshDb();
    const res = await importMlruns(db, zip);
    const out = unzipToMap(
      await exportMlruns(db, { experimentIds: res.experimentIds, registeredModels: 'all' }),
    );
    const input = unzipToMap(zip);
    // The deleted version is not kept (MLflow hides it from every read).
    input.delete('mlruns/models/My Model/version-4/meta.yaml');
    expect([...out.keys()].sort()).toEqual([...input.keys()].sort());
    for (const [k, v] of input) expect(dec.decode(out.get(k)!), k).toBe(dec.decode(v));
    for (const [k, v] of input) expect(out.get(k), k).toEqual(v);
  });

  it('rewrites only what changed, keeping the keys it does not map', async () => {
    const db = await freshDb();
    await importMlruns(db, zip);
    const r = new RegistryClient(db);
    await r.setRegisteredModelAlias('My Model', 'challenger', 3);
    await r.updateModelVersion('My Model', 1, 'first one');
    await r.setModelVersionTag('My Model', 1, 'k', 'v');
    const out = await exportMlrunsFiles(db, { experimentIds: [], registeredModels: ['My Model'] });
    const text = (p: string) => dec.decode(out.get(`models/My Model/${p}`)!);
    expect(text('meta.yaml')).toMatch(/^aliases:\n {2}challenger: '3'\n {2}champion: '2'\n/);
    expect(text('meta.yaml')).toContain('workspace: default\n');
    expect(text('aliases/challenger')).toBe('3');
    expect(text('version-1/meta.yaml')).toContain('description: first one\n');
    expect(text('version-1/meta.yaml')).toContain('model_id: null\n');
    expect(text('version-1/meta.yaml')).toContain('status_message: null\n');
    expect(text('version-1/tags/k')).toBe('v');
    const input = unzipToMap(zip);
    expect(out.get('models/My Model/version-2/meta.yaml')).toEqual(
      input.get('mlruns/models/My Model/version-2/meta.yaml'),
    );
    expect([...out.keys()].some((k) => k.startsWith('models/other/'))).toBe(false);
  });

  it('exports models made in the browser so that a re-import gives them back', async () => {
    const db = await freshDb();
    const t = new TrackingClient(db);
    const r = new RegistryClient(db);
    const exp = await t.createExperiment('browser');
    const run = await t.startRun({ experimentId: exp });
    await t.logText(run.runId, 'artifact_path: model\nflavors: {}\n', 'model/MLmodel');
    await t.endRun(run.runId);
    await r.registerModelFromRun('made here', run.runId, 'model', { description: 'hi' });
    await r.setRegisteredModelAlias('made here', 'prod', 1);
    await r.setRegisteredModelTag('made here', 'owner', 'me');
    const files = await exportMlruns(db, { experimentIds: [exp], registeredModels: 'all' });
    const meta = dec.decode(unzipToMap(files).get('mlruns/models/made here/version-1/meta.yaml')!);
    expect(meta).toContain(`source: runs:/${run.runId}/model\n`);
    expect(meta).toContain(`storage_location: runs:/${run.runId}/model\n`);
    expect(meta).toContain('run_link: null\n');

    const db2 = await freshDb();
    const res = await importMlruns(db2, files);
    expect(res.registeredModels).toEqual(['made here']);
    const r2 = new RegistryClient(db2);
    const v = await r2.getModelVersionByAlias('made here', 'prod');
    expect(v).toMatchObject({ version: '1', runId: run.runId, description: 'hi' });
    expect((await r2.getRegisteredModel('made here')).tags).toEqual({ owner: 'me' });
    expect((await r2.getRegisteredModel('made here')).description).toBe('');
    expect((await r2.getModelVersionDetails('made here', 1)).files.map((f) => f.path)).toEqual([
      'MLmodel',
    ]);
  });
});

describe('the import is all or nothing, registry included', () => {
  it('refuses a registered model that exists, leaving the store unchanged', async () => {
    const db = await freshDb();
    await new RegistryClient(db).createRegisteredModel('other');
    const before = await counts(db);
    await expect(importMlruns(db, zip)).rejects.toThrow(
      /Registered Model \(name=other\) already exists/,
    );
    expect(await counts(db)).toEqual(before);
  });

  it('leaves the store unchanged when a registry file is bad', async () => {
    const db = await freshDb();
    const files = unzipToMap(zip);
    files.set('mlruns/models/other/version-1/meta.yaml', enc.encode('version: [1\n'));
    const before = await counts(db);
    await expect(importMlruns(db, files)).rejects.toThrow(
      /mlruns\/models\/other\/version-1\/meta.yaml:\d+: invalid YAML/,
    );
    expect(await counts(db)).toEqual(before);
  });

  it('replaces models of the same name when asked, freeing their files', async () => {
    const db = await freshDb();
    await importMlruns(db, zip);
    const r = new RegistryClient(db);
    await r.setRegisteredModelTag('My Model', 'extra', '1');
    const before = await counts(db);
    await importMlruns(db, zip, { onConflict: 'replace' });
    expect((await r.getRegisteredModel('My Model')).tags).toEqual({ team: 'vision' });
    expect(await counts(db)).toEqual(before);
  });

  it('can leave the registry out', async () => {
    const db = await freshDb();
    const res = await importMlruns(db, zip, { registry: false });
    expect(res.registeredModels).toEqual([]);
    expect(res.warnings.join()).toMatch(/registry folder \(models\/\) is not part/);
    expect(await db.count('registeredModels')).toBe(0);
  });
});

describe('import progress and cancel', () => {
  it('reports each phase, and bytes while writing', async () => {
    const db = await freshDb();
    const seen: ImportProgress[] = [];
    await importMlruns(db, zip, { onProgress: (p) => seen.push(p) });
    const phases = [...new Set(seen.map((p) => p.phase))];
    expect(phases).toEqual(['unzipping', 'parsing', 'checking', 'writing', 'committing', 'done']);
    const writing = seen.filter((p) => p.phase === 'writing');
    expect(writing.at(-1)!.done).toBe(writing.at(-1)!.total);
    expect(writing.at(-1)!.total).toBeGreaterThan(0);
    for (let i = 1; i < writing.length; i++)
      expect(writing[i]!.done).toBeGreaterThanOrEqual(writing[i - 1]!.done);
  });

  it.each(['parsing', 'writing', 'committing'] as const)(
    'a cancel during %s leaves the store unchanged',
    async (phase) => {
      const db = await freshDb();
      const before = await counts(db);
      const abort = new AbortController();
      let calls = 0;
      const p = importMlruns(db, zip, {
        signal: abort.signal,
        onProgress: (x) => {
          if (x.phase === phase && ++calls === 2 - (phase === 'committing' ? 1 : 0)) abort.abort();
        },
      });
      if (phase === 'committing') {
        // Once the final write starts the import is no longer cancellable: it lands whole.
        await p;
        expect(await db.count('registeredModels')).toBe(2);
        return;
      }
      await expect(p).rejects.toMatchObject({ name: 'AbortError' });
      expect(await counts(db)).toEqual(before);
    },
  );

  it('a signal aborted before the start imports nothing', async () => {
    const db = await freshDb();
    const abort = new AbortController();
    abort.abort();
    await expect(importMlruns(db, zip, { signal: abort.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(await db.count('experiments')).toBe(0);
  });

  it('names conflicts as MLflow errors', async () => {
    const db = await freshDb();
    await importMlruns(db, zip);
    await expect(importMlruns(db, zip)).rejects.toBeInstanceOf(MlflowError);
  });
});
