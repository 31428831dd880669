// Sync with a real `mlflow server` (MLflow 3.x, sqlite backend, artifact proxy): the app pushes an
// experiment with nested runs, full metric histories, tags and artifacts, and registers model
// versions with aliases; MlflowClient reads back the same. Pushing again (or after an interrupted
// push) creates no duplicates. Then a fresh store pulls the runs and a model version back.
import 'fake-indexeddb/auto';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import {
  MlflowRestError,
  SOURCE_RUN_TAG,
  SyncClient,
  remoteRunTag,
} from '../../src/lib/services/sync.ts';
import { dumpApp, sortPoints, type DumpedRun, type StoreDump } from './support/app-view.ts';
import { freePort, startMlflowServer, type MlflowServer } from './support/mlflow-server.ts';
import { PY, removeTempDirs, runPython, runPythonJson, tempDir } from './support/python.ts';
import { getBlobRecord, readBlobBytes } from '../../src/lib/store/blobs.ts';
import { getRunArtifacts } from '../../src/lib/store/tracking.ts';
import { getModelVersionRecord } from '../../src/lib/store/registry.ts';
import { listModelFiles } from '../../src/lib/store/model-files.ts';

const available = Boolean(PY.mlflow3);
let server: MlflowServer | undefined;

afterAll(async () => {
  await server?.stop();
  removeTempDirs();
});

const MLMODEL = `artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.pyfunc.model
    python_version: 3.11.9
mlflow_version: 3.17.2
model_uuid: 0123456789abcdef0123456789abcdef
utc_time_created: '2025-01-01 00:00:00.000000'
`;

const MAX_DOUBLE = 1.7976931348623157e308;

describe('sync with a real mlflow server', () => {
  let dir = '';
  let tracking: TrackingClient;
  let registry: RegistryClient;
  let sync: SyncClient;
  let experimentId = '';
  const runs: Record<string, string> = {};

  async function serverDump(name: string): Promise<StoreDump> {
    const out = join(dir, `${name}.json`);
    await runPython('mlflow3', 'dump_store.py', ['dump', server!.url, '--out', out]);
    return JSON.parse(readFileSync(out, 'utf8')) as StoreDump;
  }

  beforeAll(async () => {
    if (!available) return;
    dir = tempDir('remote-sync');
    const started = startMlflowServer({
      backendStoreUri: `sqlite:///${join(dir, 'mlflow.db')}`,
      artifactsDestination: join(dir, 'mlartifacts'),
    });
    tracking = new TrackingClient(await openDatabase({ name: 'interop-remote-sync' }));
    registry = new RegistryClient(tracking.db);
    experimentId = await tracking.createExperiment('sync-alpha', { tags: { team: 'ünï ✓' } });
    const parent = await tracking.startRun({ experimentId, runName: 'parent', startTime: 1000 });
    runs.parent = parent.runId;
    await tracking.logParams(parent.runId, { lr: 0.01, optimizer: 'adam', note: 'x'.repeat(600) });
    await tracking.setTags(parent.runId, { kind: 'sweep', 'mlflow.note.content': 'notes *md*' });
    for (let from = 0; from < 2500; from += 1000) {
      await tracking.logBatch(parent.runId, {
        metrics: Array.from({ length: Math.min(1000, 2500 - from) }, (_, n) => ({
          key: 'loss',
          value: 1 / (from + n + 1),
          timestamp: 1_700_000_000_000 + from + n,
          step: from + n,
        })),
      });
    }
    await tracking.logBatch(parent.runId, {
      metrics: [
        { key: 'weird', value: NaN, timestamp: 5, step: 0 },
        { key: 'weird', value: Infinity, timestamp: 6, step: 1 },
        { key: 'weird', value: -Infinity, timestamp: 7, step: 2 },
        { key: 'twice', value: 1, timestamp: 5, step: 0 },
        { key: 'twice', value: 2, timestamp: 5, step: 0 },
      ],
    });
    await tracking.logText(parent.runId, 'hello from the browser\n', 'notes/readme.txt');
    await tracking.logArtifact(
      parent.runId,
      'bin/data.bin',
      new Uint8Array(Array.from({ length: 70_000 }, (_, n) => (n * 7) % 256)),
    );
    await tracking.logText(parent.runId, MLMODEL, 'model/MLmodel');
    await tracking.logText(parent.runId, 'weights', 'model/python_model.pkl');
    await tracking.endRun(parent.runId, 'FINISHED', 2000);
    const child = await tracking.startRun({
      experimentId,
      runName: 'child',
      parentRunId: parent.runId,
      startTime: 1500,
    });
    runs.child = child.runId;
    await tracking.logParam(child.runId, 'fold', 1);
    await tracking.logMetric(child.runId, 'acc', 0.5, { step: 0, timestamp: 10 });
    await tracking.endRun(child.runId, 'FAILED', 1900);

    await registry.createRegisteredModel('sync-model', {
      description: 'pushed from the browser',
      tags: { owner: 'ml' },
    });
    await registry.registerModelFromRun('sync-model', parent.runId, 'model', {
      tags: { quality: 'gold' },
    });
    await registry.registerModelFromRun('sync-model', parent.runId, 'model', {
      description: 'second',
    });
    await registry.setRegisteredModelAlias('sync-model', 'champion', 1);
    await registry.setRegisteredModelAlias('sync-model', 'challenger', 2);
    await registry.transitionModelVersionStage('sync-model', 2, 'Staging');

    server = await started;
    sync = new SyncClient(tracking.db, server.url);
  });

  /** The local run as MlflowClient should see it on the server. */
  async function expectedRemote(runId: string, remoteIds: Record<string, string>) {
    const app = (await dumpApp(tracking)).runs.find((r) => r.run_id === runId)!;
    const tags = Object.fromEntries(
      Object.entries(app.tags).filter(([k]) => !k.startsWith('tabflow.remote.')),
    );
    if (tags['mlflow.parentRunId'])
      tags['mlflow.parentRunId'] = remoteIds[tags['mlflow.parentRunId']]!;
    tags[SOURCE_RUN_TAG] = runId;
    const clamp = (v: DumpedRun['metrics'][string]) =>
      v === 'Infinity' ? MAX_DOUBLE : v === '-Infinity' ? -MAX_DOUBLE : v;
    return {
      run_name: app.run_name,
      status: app.status,
      start_time: app.start_time,
      end_time: app.end_time,
      params: app.params,
      tags,
      metrics: Object.fromEntries(Object.entries(app.metrics).map(([k, v]) => [k, clamp(v)])),
      metric_history: Object.fromEntries(
        Object.entries(app.metric_history).map(([k, ps]) => [
          k,
          sortPoints(ps.map((p) => ({ ...p, value: clamp(p.value) }))),
        ]),
      ),
      artifacts: app.artifacts,
    };
  }

  function remoteView(r: DumpedRun) {
    return {
      run_name: r.run_name,
      status: r.status,
      start_time: r.start_time,
      end_time: r.end_time,
      params: r.params,
      tags: r.tags,
      metrics: r.metrics,
      metric_history: Object.fromEntries(
        Object.entries(r.metric_history).map(([k, ps]) => [k, sortPoints(ps)]),
      ),
      artifacts: r.artifacts,
    };
  }

  it.skipIf(!available)(
    'pushes an experiment and model versions, and MlflowClient reads back the same; a second push adds nothing',
    async () => {
      const phases = new Set<string>();
      const first = await sync.pushExperiment(experimentId, {
        onProgress: (p) => phases.add(p.phase),
      });
      expect(first.runs.map((r) => r.created)).toEqual([true, true]);
      expect(phases).toEqual(new Set(['experiment', 'run', 'metrics', 'artifacts', 'done']));
      const remoteIds = Object.fromEntries(first.runs.map((r) => [r.runId, r.remoteRunId]));
      // The remote run id is remembered on the local run.
      expect((await tracking.getRun(runs.parent!)).tags[remoteRunTag(server!.url)]).toBe(
        remoteIds[runs.parent!],
      );
      const v1 = await sync.pushModelVersion('sync-model', 1);
      const v2 = await sync.pushModelVersion('sync-model', 2);
      expect([v1.created, v2.created]).toEqual([true, true]);

      // Everything again: nothing new is created or sent.
      const again = await sync.pushExperiment(experimentId);
      expect(
        again.runs.map((r) => [r.created, r.metricPointsSent, r.artifactsSent, r.paramsSent]),
      ).toEqual([
        [false, 0, 0, 0],
        [false, 0, 0, 0],
      ]);
      expect((await sync.pushModelVersion('sync-model', 1)).created).toBe(false);
      expect((await sync.pushModelVersion('sync-model', 2)).created).toBe(false);

      const dump = await serverDump('after-push');
      const remoteRuns = dump.runs.filter((r) => r.tags[SOURCE_RUN_TAG]);
      expect(remoteRuns).toHaveLength(2);
      for (const localId of [runs.parent!, runs.child!]) {
        const r = remoteRuns.find((x) => x.tags[SOURCE_RUN_TAG] === localId)!;
        expect(r.run_id).toBe(remoteIds[localId]);
        expect(remoteView(r), localId).toEqual(await expectedRemote(localId, remoteIds));
      }
      const exp = dump.experiments.find((e) => e.name === 'sync-alpha')!;
      expect(exp.tags.team).toBe('ünï ✓');

      const model = dump.registered_models.find((m) => m.name === 'sync-model')!;
      expect(model.description).toBe('pushed from the browser');
      expect(model.tags).toEqual({ owner: 'ml' });
      expect(model.aliases).toEqual({ champion: '1', challenger: '2' });
      expect(
        model.versions.map((v) => [v.version, v.current_stage, v.run_id, v.source, v.aliases]),
      ).toEqual([
        [
          '1',
          'None',
          remoteIds[runs.parent!],
          `runs:/${remoteIds[runs.parent!]}/model`,
          ['champion'],
        ],
        [
          '2',
          'Staging',
          remoteIds[runs.parent!],
          `runs:/${remoteIds[runs.parent!]}/model`,
          ['challenger'],
        ],
      ]);
      expect(model.versions[0]!.tags.quality).toBe('gold');
      expect(model.versions[1]!.description).toBe('second');
    },
  );

  it.skipIf(!available)('resumes an interrupted push without duplicating points', async () => {
    const run = await tracking.startRun({ experimentId, runName: 'interrupted' });
    for (let from = 0; from < 3000; from += 1000) {
      await tracking.logBatch(run.runId, {
        metrics: Array.from({ length: 1000 }, (_, n) => ({
          key: 'm',
          value: from + n,
          timestamp: 1_700_000_000_000,
          step: from + n,
        })),
      });
    }
    await tracking.endRun(run.runId);
    const stop = new AbortController();
    const err = await sync
      .pushRun(run.runId, {
        signal: stop.signal,
        onProgress: (p) => {
          if (p.phase === 'metrics' && p.done >= 1000) stop.abort();
        },
      })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    const resumed = await sync.pushRun(run.runId);
    expect(resumed.created).toBe(false);
    // The first call got one log-batch through (a few tags and the rest metrics) before it stopped.
    expect(resumed.metricPointsSent).toBeGreaterThan(1900);
    expect(resumed.metricPointsSent).toBeLessThan(2100);
    const history = await sync.rest.getMetricHistory(resumed.remoteRunId, 'm');
    expect(history).toHaveLength(3000);
    expect((await sync.rest.getRun(resumed.remoteRunId)).info.status).toBe('FINISHED');
  });

  it.skipIf(!available)("surfaces the server's error code and message", async () => {
    const err = await sync.rest.getRun('0'.repeat(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowRestError);
    expect((err as MlflowRestError).errorCode).toBe('RESOURCE_DOES_NOT_EXIST');
    expect((err as MlflowRestError).httpStatus).toBe(404);
    expect((err as Error).message).toMatch(/^RESOURCE_DOES_NOT_EXIST: Run .*0{32}.* not found/);
  });

  it.skipIf(!available)(
    'pulls the runs and a model version into a fresh store, with the same data',
    async () => {
      const target = new SyncClient(
        await openDatabase({ name: 'interop-remote-pull' }),
        server!.url,
      );
      const experiments = await target.listRemoteExperiments();
      const remoteExp = experiments.find((e) => e.name === 'sync-alpha')!;
      const listed = await target.listRemoteRuns(remoteExp.experimentId);
      expect(listed.map((r) => r.info.runName).sort()).toEqual(['child', 'interrupted', 'parent']);
      const parentRemote = listed.find((r) => r.info.runName === 'parent')!;
      const pulled = await target.pullRun(parentRemote.info.runId);
      expect(pulled).toMatchObject({ created: true, metricPoints: 2505, artifacts: 4 });
      expect((await target.pullRun(parentRemote.info.runId)).created).toBe(false);

      const mine = (await dumpApp(tracking)).runs.find((r) => r.run_id === runs.parent)!;
      const theirs = (await dumpApp(target.tracking)).runs.find(
        (r) => r.run_id === parentRemote.info.runId,
      )!;
      const clamp = (v: unknown) =>
        v === 'Infinity' ? MAX_DOUBLE : v === '-Infinity' ? -MAX_DOUBLE : v;
      expect(theirs.params).toEqual(mine.params);
      expect(theirs.artifacts).toEqual(mine.artifacts);
      for (const [k, points] of Object.entries(mine.metric_history)) {
        expect(theirs.metric_history[k], k).toEqual(
          sortPoints(points.map((p) => ({ ...p, value: clamp(p.value) as typeof p.value }))),
        );
      }
      expect(theirs.tags[remoteRunTag(server!.url)]).toBe(parentRemote.info.runId);
      expect(theirs.tags.kind).toBe('sweep');

      const models = await target.listRemoteModels();
      expect(models.map((m) => m.name)).toContain('sync-model');
      const versions = await target.listRemoteVersions('sync-model');
      expect(versions.map((v) => v.version)).toEqual(['2', '1']);
      const got = await target.pullModelVersion('sync-model', '1');
      const v = await target.registry.getModelVersion(got.name, got.version);
      expect(v.aliases).toEqual(['champion']);
      expect(v.tags.quality).toBe('gold');
      const details = await target.registry.getModelVersionDetails(got.name, got.version);
      expect(details.files.map((f) => f.path).sort()).toEqual(['MLmodel', 'python_model.pkl']);
      expect((await target.registry.getRegisteredModel('sync-model')).description).toBe(
        'pushed from the browser',
      );
    },
  );
});

describe('pulling a large artifact from a real mlflow server', () => {
  const MiB = 1024 * 1024;
  const SIZE = 40 * 1000 * 1000;
  const CHUNK = 4 * MiB;
  let big: MlflowServer | undefined;
  let proxy: Server | undefined;
  let logged: { run_id: string; path: string; size: number; sha256: string; model_version: string };

  afterAll(async () => {
    await big?.stop();
    await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  });

  beforeAll(async () => {
    if (!available) return;
    const dir = tempDir('remote-pull-big');
    big = await startMlflowServer({
      backendStoreUri: `sqlite:///${join(dir, 'mlflow.db')}`,
      artifactsDestination: join(dir, 'mlartifacts'),
    });
    logged = await runPythonJson('mlflow3', 'log_big_artifact.py', [
      big.url,
      'pull-big',
      String(SIZE),
      '--register',
      'pull-big-model',
    ]);
  });

  it.skipIf(!available)(
    'streams 40 MB into the store chunk by chunk, with the same bytes and at most one chunk in flight',
    async () => {
      const db = await openDatabase({ name: 'interop-remote-pull-big' });
      // Counts what the server has sent against what the store has committed, piece by piece.
      let sent = 0;
      let peak = 0;
      const counting = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const r = await fetch(input, init);
        if (!String(input).includes('/mlflow-artifacts/artifacts/') || !r.body) return r;
        const meter = new TransformStream<Uint8Array, Uint8Array>({
          async transform(piece, controller) {
            const committed = (await db.count('blobChunks')) * CHUNK;
            sent += piece.byteLength;
            peak = Math.max(peak, sent - committed);
            controller.enqueue(piece);
          },
        });
        return new Response(r.body.pipeThrough(meter), { status: r.status, headers: r.headers });
      }) as typeof fetch;
      const target = new SyncClient(db, big!.url, { fetch: counting });
      const phases: number[] = [];
      const pulled = await target.pullRun(logged.run_id, {
        chunkSize: CHUNK,
        onProgress: (p) => {
          if (p.phase === 'artifacts') phases.push(p.done);
        },
      });
      expect(pulled).toMatchObject({ created: true, artifacts: 1 });
      const [artifact] = await getRunArtifacts(db, logged.run_id);
      expect(artifact).toMatchObject({ path: logged.path, size: SIZE });
      const rec = await getBlobRecord(db, artifact!.blobId);
      expect(rec).toMatchObject({ chunkSize: CHUNK, chunkCount: Math.ceil(SIZE / CHUNK) });
      const bytes = await readBlobBytes(db, artifact!.blobId);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(logged.sha256);
      expect(sent).toBe(SIZE);
      // One chunk being filled, plus what the network hands over in one piece.
      expect(peak).toBeLessThanOrEqual(CHUNK + 2 * MiB);
      expect(phases.at(-1)).toBe(SIZE);
      expect(phases.length).toBeGreaterThan(10);

      // A model version carrying the same file as its `weights` artifact streams in too.
      sent = 0;
      const got = await target.pullModelVersion('pull-big-model', logged.model_version);
      const details = await target.registry.getModelVersionDetails(got.name, got.version);
      const weights = details.files.find((f) => f.path === 'artifacts/big.bin');
      expect(weights?.size).toBe(SIZE);
      const record = await getModelVersionRecord(db, got.name, got.version);
      const file = (await listModelFiles(db, record.id)).find(
        (f) => f.path === 'artifacts/big.bin',
      )!;
      const weightBytes = await readBlobBytes(db, file.blobId);
      expect(createHash('sha256').update(weightBytes).digest('hex')).toBe(logged.sha256);
    },
  );

  it.skipIf(!available)(
    'leaves the store as it was when the connection drops mid-artifact, and says what failed',
    async () => {
      // A proxy in front of the server that drops the connection 10 MB into the file.
      const upstream = new URL(big!.url);
      const port = await freePort();
      proxy = createServer((req, res) => {
        const up = request(
          {
            host: upstream.hostname,
            port: upstream.port,
            path: req.url,
            method: req.method,
            headers: { ...req.headers, host: upstream.host },
          },
          (upRes) => {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            if (!req.url?.includes('/mlflow-artifacts/artifacts/')) {
              upRes.pipe(res);
              return;
            }
            let passed = 0;
            upRes.on('data', (b: Buffer) => {
              passed += b.length;
              if (passed > 10 * 1000 * 1000) {
                upRes.destroy();
                res.socket?.destroy();
                return;
              }
              res.write(b);
            });
            upRes.on('end', () => res.end());
          },
        );
        req.pipe(up);
      });
      await new Promise<void>((r) => proxy!.listen(port, '127.0.0.1', () => r()));

      const db = await openDatabase({ name: 'interop-remote-pull-dropped' });
      const target = new SyncClient(db, `http://127.0.0.1:${port}`);
      const err = await target
        .pullRun(logged.run_id, { chunkSize: CHUNK })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MlflowRestError);
      expect((err as MlflowRestError).errorCode).toBe('NETWORK_ERROR');
      expect((err as Error).message).toMatch(
        new RegExp(
          `download of '.*/${logged.run_id}/artifacts/weights/big\\.bin' .* stopped after \\d+ of ${SIZE} bytes`,
        ),
      );
      // Nothing of the run: no experiment, no run, no stored bytes.
      expect(await target.tracking.listExperiments({ viewType: 'ALL' })).toEqual([]);
      expect(await db.count('runs')).toBe(0);
      expect(await db.count('blobFiles')).toBe(0);
      expect(await db.count('blobChunks')).toBe(0);

      // The same for a model version: no registered model, version or stored bytes are left.
      const versionErr = await target
        .pullModelVersion('pull-big-model', logged.model_version)
        .catch((e: unknown) => e);
      expect((versionErr as MlflowRestError).errorCode).toBe('NETWORK_ERROR');
      expect((versionErr as Error).message).toMatch(/big\.bin' .* stopped after \d+ of \d+ bytes/);
      expect(await db.count('registeredModels')).toBe(0);
      expect(await db.count('modelVersions')).toBe(0);
      expect(await db.count('modelFiles')).toBe(0);
      expect(await db.count('blobFiles')).toBe(0);
      expect(await db.count('blobChunks')).toBe(0);
    },
  );
});
