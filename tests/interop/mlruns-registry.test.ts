// The registry folder of an mlruns export (models/) as Python MLflow's registry FileStore reads
// it: registered models, versions, tags and aliases, and `models:/<name>@<alias>` downloading the
// files of a version registered from a run's artifacts.
import 'fake-indexeddb/auto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { exportMlrunsFiles, importMlruns } from '../../src/lib/services/mlruns-io.ts';
import { PY, removeTempDirs, runPythonJson, tempDir, writeTree } from './support/python.ts';

afterAll(removeTempDirs);

interface Seen {
  models: {
    name: string;
    description: string | null;
    tags: Record<string, string>;
    aliases: Record<string, string>;
    versions: {
      version: number;
      source: string;
      run_id: string | null;
      stage: string;
      tags: Record<string, string>;
    }[];
  }[];
  by_alias: { version: number; source: string; run_id: string | null };
  files: string[];
}

describe('the registry of an mlruns export', () => {
  it.skipIf(!PY.mlflow3)(
    'is read by MlflowClient: models, versions, tags, aliases, and the files behind an alias',
    async () => {
      const db = await openDatabase({ name: 'interop-mlruns-registry' });
      const fixture = new Uint8Array(
        readFileSync(new URL('../fixtures/mlruns-registry-mlflow-3.17.zip', import.meta.url)),
      );
      const imported = await importMlruns(db, fixture);
      const t = new TrackingClient(db);
      const r = new RegistryClient(db);
      const exp = await t.createExperiment('made in the browser');
      const run = await t.startRun({ experimentId: exp });
      await t.logText(run.runId, 'artifact_path: model\nflavors: {}\n', 'model/MLmodel');
      await t.logText(run.runId, 'weights', 'model/data/w.bin');
      await t.endRun(run.runId);
      await r.registerModelFromRun('browser model', run.runId, 'model');
      await r.setRegisteredModelAlias('browser model', 'champion', 1);
      await r.setRegisteredModelTag('browser model', 'owner', 'workshop');
      await r.setModelVersionTag('browser model', 1, 'checked', 'yes');
      await r.transitionModelVersionStage('browser model', 1, 'Staging');

      const files = await exportMlrunsFiles(db, {
        experimentIds: [...imported.experimentIds, exp],
        registeredModels: 'all',
      });
      const root = join(tempDir('mlruns-registry'), 'mlruns');
      writeTree(root, files);
      const seen = await runPythonJson<Seen>('mlflow3', 'read_registry.py', [
        root,
        'browser model',
        'champion',
      ]);

      expect(seen.models.map((m) => m.name)).toEqual(['My Model', 'browser model', 'other']);
      const browser = seen.models[1]!;
      expect(browser).toMatchObject({
        tags: { owner: 'workshop' },
        aliases: { champion: '1' },
        versions: [
          {
            version: 1,
            source: `runs:/${run.runId}/model`,
            run_id: run.runId,
            stage: 'Staging',
            tags: { checked: 'yes' },
          },
        ],
      });
      expect(seen.by_alias).toEqual({
        version: 1,
        source: `runs:/${run.runId}/model`,
        run_id: run.runId,
      });
      // MLflow adds registered_model_meta to what it downloads for a models:/ URI.
      expect(seen.files.filter((f) => f !== 'registered_model_meta')).toEqual([
        'MLmodel',
        'data/w.bin',
      ]);
      const mine = seen.models[0]!;
      expect(mine).toMatchObject({
        description: 'Echo *model*',
        tags: { team: 'vision' },
        aliases: { champion: '2' },
      });
      expect(mine.versions.map((v) => [v.version, v.stage])).toEqual([
        [1, 'None'],
        [2, 'None'],
        [3, 'Staging'],
        [5, 'None'],
      ]);
    },
  );
});
