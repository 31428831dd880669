// Downloading a model from the Hugging Face Hub into IndexedDB, against a local stand-in for
// the Hub serving the tiny Phi-3 fixture: file choice per layout, quota refusal, resume after a
// dropped connection or a closed tab, cancel, and registration as a servable version.
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type AnyDB } from '../../src/lib/store/db.ts';
import {
  DownloadGoneError,
  DownloadPausedError,
  DownloadQuotaError,
  HUB_PRESETS,
  HubDownloads,
  HubError,
  RateMeter,
  defaultModelName,
  type DownloadProgress,
  type HubDownloadConfig,
} from '../../src/lib/services/hub-download.ts';
import { selectLayoutFiles, type HubFile } from '../../src/lib/remote/hub.ts';
import { RegistryClient } from '../../src/lib/services/registry.ts';
import { listModelFiles } from '../../src/lib/store/model-files.ts';
import { readBlobBytes } from '../../src/lib/store/blobs.ts';
import { getServableVersion, modelFilesForServing } from '../../src/lib/services/playground.ts';
import { parseMLmodel, writeMLmodel } from '../../src/lib/mlflow/mlmodel.ts';
import { isChatSignature } from '../../src/lib/mlflow/signature.ts';
import { formatDuration, progressText } from '../../src/ui/components/hub/format.ts';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';
import {
  folderAsRepoFiles,
  repoOf,
  startHubServer,
  type HubServer,
} from '../helpers/hub-server.ts';

const GENAI_FOLDER = 'cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4';
const MiB = 1024 * 1024;

let server: HubServer;
let web: Map<string, Uint8Array>;
let genai: Map<string, Uint8Array>;

beforeAll(async () => {
  const tiny = await ensureTinyPhi3();
  web = folderAsRepoFiles(tiny.web);
  web.set('README.md', new TextEncoder().encode('# tiny'));
  genai = folderAsRepoFiles(tiny.genai, `${GENAI_FOLDER}/`);
  // A second variant in the same repo that must not be picked.
  genai.set('cuda/cuda-int4/genai_config.json', new TextEncoder().encode('{}'));
  genai.set('README.md', new TextEncoder().encode('# tiny genai'));
  server = await startHubServer({
    'tiny/phi3-web': repoOf(web, 'web'),
    'tiny/phi3-onnx': repoOf(genai, 'genai'),
  });
});

afterAll(async () => {
  await server?.close();
});

let n = 0;
async function fresh(): Promise<{ db: AnyDB; name: string }> {
  const name = `hub-download-${n++}`;
  return { db: await openDatabase({ name }), name };
}

function hub(db: AnyDB, cfg: HubDownloadConfig = {}): HubDownloads {
  return new HubDownloads(db, {
    hubUrl: server.url,
    chunkSize: MiB,
    retryDelayMs: 5,
    progressIntervalMs: 0,
    estimate: async () => ({ quota: 10_000 * MiB, usage: 0 }),
    shaderF16: async () => false,
    ...cfg,
  });
}

function reset(opts = {}) {
  server.requests.length = 0;
  server.drops.length = 0;
  server.options = opts;
}

async function countChunks(db: AnyDB): Promise<{ chunks: number; files: number }> {
  return {
    chunks: (await db.getAllKeys('blobChunks')).length,
    files: (await db.getAllKeys('blobFiles')).length,
  };
}

/** Every stored file of the version, by version path, as bytes. */
async function storedFiles(db: AnyDB, versionId: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of await listModelFiles(db, versionId)) {
    out.set(f.path, await readBlobBytes(db, f.blobId));
  }
  return out;
}

function expectSameBytes(actual: Uint8Array | undefined, expected: Uint8Array | undefined) {
  expect(actual).toBeDefined();
  expect(expected).toBeDefined();
  expect(actual!.length).toBe(expected!.length);
  expect(Buffer.compare(Buffer.from(actual!), Buffer.from(expected!))).toBe(0);
}

describe('choosing the files of a layout', () => {
  const list = (paths: string[]): HubFile[] => paths.map((path) => ({ path, size: 10 }));
  const webRepo = list([
    'README.md',
    'config.json',
    'generation_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'onnx/model_q4f16.onnx',
    'onnx/model_q4f16.onnx_data',
    'onnx/model_q4.onnx',
    'onnx/model_q4.onnx_data',
    'onnx/model_q4.onnx_data_1',
    'onnx/model_fp16.onnx',
  ]);

  it('takes the config, the tokenizer and one dtype with all its external data parts', () => {
    const q4 = selectLayoutFiles(webRepo, { layout: 'auto', dtype: 'q4' });
    expect(q4.layout).toBe('web');
    expect(q4.files.map((f) => f.path)).toEqual([
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
      'onnx/model_q4.onnx',
      'onnx/model_q4.onnx_data',
      'onnx/model_q4.onnx_data_1',
    ]);
    expect(q4.totalBytes).toBe(70);
    const f16 = selectLayoutFiles(webRepo, { layout: 'web', dtype: 'q4f16' });
    expect(f16.files.map((f) => f.path).filter((p) => p.startsWith('onnx/'))).toEqual([
      'onnx/model_q4f16.onnx',
      'onnx/model_q4f16.onnx_data',
    ]);
  });

  it('falls back to the other dtype only when allowed, and names what the repo has otherwise', () => {
    const onlyF16 = webRepo.filter((f) => !f.path.startsWith('onnx/model_q4.'));
    expect(
      selectLayoutFiles(onlyF16, { layout: 'web', dtype: 'q4', dtypeFallback: true }).dtype,
    ).toBe('q4f16');
    expect(() => selectLayoutFiles(onlyF16, { layout: 'web', dtype: 'q4' })).toThrow(
      /no onnx\/model_q4\.onnx.*It has: onnx\/model_q4f16\.onnx, onnx\/model_fp16\.onnx/,
    );
  });

  it('takes one genai folder and nothing beside it, and says which required file is missing', () => {
    const repo = list([
      'README.md',
      'cpu/genai_config.json',
      'cpu/model.onnx',
      'cpu/model.onnx.data',
      'cpu/tokenizer.json',
      'cpu/tokenizer_config.json',
      'cpu/special_tokens_map.json',
      'cpu/configuration_phi3.py',
      'cuda/genai_config.json',
      'cuda/model.onnx',
    ]);
    const sel = selectLayoutFiles(repo, { layout: 'auto', subfolder: 'cpu' });
    expect(sel.layout).toBe('genai');
    expect(sel.root).toBe('cpu/');
    expect(sel.files.map((f) => f.path)).toEqual([
      'cpu/genai_config.json',
      'cpu/tokenizer.json',
      'cpu/tokenizer_config.json',
      'cpu/special_tokens_map.json',
      'cpu/model.onnx',
      'cpu/model.onnx.data',
    ]);
    expect(() =>
      selectLayoutFiles(
        repo.filter((f) => f.path !== 'cpu/tokenizer.json'),
        { layout: 'genai', subfolder: 'cpu' },
      ),
    ).toThrow(/cpu\/tokenizer\.json is missing/);
    expect(() => selectLayoutFiles(repo, { layout: 'auto' })).toThrow(
      /neither an onnxruntime-genai model .* nor a transformers\.js ONNX export/,
    );
  });
});

describe('planning a download', () => {
  it('pins the revision to a commit, follows the paginated file list and picks q4f16 only with shader-f16', async () => {
    const { db } = await fresh();
    reset({ pageSize: 3 });
    const plan = await hub(db).plan({ repoId: 'tiny/phi3-web', dtype: 'auto' });
    expect(plan.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(plan.layout).toBe('web');
    expect(plan.dtype).toBe('q4');
    expect(plan.modelName).toBe('phi3-web');
    expect(plan.files.map((f) => f.path)).toContain('onnx/model_q4.onnx_data');
    expect(plan.totalBytes).toBe(plan.files.reduce((s, f) => s + f.size, 0));
    // The LFS size is used, not the pointer's.
    expect(plan.files.find((f) => f.path === 'onnx/model_q4.onnx_data')?.size).toBe(
      web.get('onnx/model_q4.onnx_data')!.length,
    );
    expect(server.requests.filter((r) => r.path.includes('/tree/')).length).toBeGreaterThan(2);
    expect(server.requests.every((r) => !r.path.includes('/tree/main'))).toBe(true);

    const f16 = await hub(db, { shaderF16: async () => true }).plan({
      repoId: 'tiny/phi3-web',
      dtype: 'auto',
    });
    expect(f16.dtype).toBe('q4f16');
    expect(f16.files.map((f) => f.path)).toContain('onnx/model_q4f16.onnx_data');
  });

  it('explains a bad model id, an unknown repo and a missing folder', async () => {
    const { db } = await fresh();
    reset();
    await expect(hub(db).plan({ repoId: 'not a repo' })).rejects.toThrow(
      /not a Hugging Face model id/,
    );
    await expect(hub(db).plan({ repoId: 'tiny/nothing-here' })).rejects.toThrow(
      /tiny\/nothing-here: .*not found on the Hub \(HTTP 404\)/,
    );
    await expect(
      hub(db).plan({ repoId: 'tiny/phi3-onnx', subfolder: 'no/such/folder' }),
    ).rejects.toThrow(/the folder 'no\/such\/folder' was not found/);
  });

  it('knows the Phi-3 presets and names models after the repo and folder', () => {
    expect(HUB_PRESETS.map((p) => p.repoId)).toEqual([
      'onnx-community/Phi-3.5-mini-instruct-onnx-web',
      'microsoft/Phi-3-mini-4k-instruct-onnx-web',
      'microsoft/Phi-3-mini-4k-instruct-onnx',
    ]);
    expect(HUB_PRESETS[2]!.subfolder).toBe(GENAI_FOLDER);
    expect(defaultModelName('microsoft/Phi-3-mini-4k-instruct-onnx', GENAI_FOLDER)).toBe(
      'Phi-3-mini-4k-instruct-onnx-cpu-int4-rtn-block-32-acc-level-4',
    );
  });
});

describe('downloading and registering', () => {
  it('a web-layout download registers a servable chat version whose files are byte-identical', async () => {
    const { db } = await fresh();
    reset();
    const progress: DownloadProgress[] = [];
    const done = await hub(db).download(
      { repoId: 'tiny/phi3-web', dtype: 'q4', modelName: 'phi3-web' },
      { onProgress: (p) => progress.push(p) },
    );
    expect(done).toMatchObject({ name: 'phi3-web', version: '1' });
    expect(done.servable).toMatchObject({ kind: 'chat', layout: 'web', root: 'model/' });
    expect(done.servable?.files.model).toBe('model/onnx/model_q4.onnx');

    const files = await storedFiles(db, done.versionId);
    for (const p of [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'added_tokens.json',
      'onnx/model_q4.onnx',
      'onnx/model_q4.onnx_data',
    ]) {
      expectSameBytes(files.get(`model/${p}`), web.get(p));
    }
    expect([...files.keys()].some((p) => p.includes('q4f16') || p.includes('README'))).toBe(false);
    expect([...files.keys()]).toEqual(
      expect.arrayContaining(['MLmodel', 'conda.yaml', 'python_env.yaml', 'requirements.txt']),
    );

    // The MLmodel is a transformers llm/v1/chat model naming its source, and writes back as read.
    const mlmodelText = new TextDecoder().decode(files.get('MLmodel'));
    const mlmodel = parseMLmodel(mlmodelText);
    expect(mlmodel.flavors.transformers).toMatchObject({
      inference_task: 'llm/v1/chat',
      source_model_name: 'tiny/phi3-web',
      model_binary: 'model',
      task: 'text-generation',
    });
    expect(mlmodel.metadata).toEqual({ task: 'llm/v1/chat' });
    expect(isChatSignature(mlmodel.signature)).toBe(true);
    expect(writeMLmodel(mlmodel)).toBe(mlmodelText);

    // The registry shows it, and the Playground gets every file it needs from the store alone.
    const registry = new RegistryClient(db);
    const v = await registry.getModelVersion('phi3-web', 1);
    expect(v.origin).toEqual({
      kind: 'huggingface',
      repoId: 'tiny/phi3-web',
      revision: repoOf(web, 'web').sha,
    });
    expect(v.tags['hf.repo_id']).toBe('tiny/phi3-web');
    expect(v.size).toBeGreaterThan(web.get('onnx/model_q4.onnx_data')!.length);
    const serving = await modelFilesForServing(db, await getServableVersion(db, 'phi3-web', '1'));
    expect(Object.keys(serving).sort()).toEqual(
      [
        'added_tokens.json',
        'config.json',
        'generation_config.json',
        'onnx/model_q4.onnx',
        'onnx/model_q4.onnx_data',
        'special_tokens_map.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ].sort(),
    );

    // Progress counted every byte, and the download record is gone.
    const last = progress[progress.length - 1]!;
    expect(last.bytesDone).toBe(last.totalBytes);
    expect(last.filesDone).toBe(last.filesTotal);
    expect(progress.some((p) => p.bytesDone > 0 && p.bytesDone < p.totalBytes)).toBe(true);
    expect(await hub(db).list()).toEqual([]);
    // No request used Range: nothing had to be resumed.
    expect(server.requests.filter((r) => r.range !== null)).toEqual([]);
  });

  it('the genai CPU folder registers as a chat version of the genai layout', async () => {
    const { db } = await fresh();
    reset();
    const done = await hub(db).download({ repoId: 'tiny/phi3-onnx', subfolder: GENAI_FOLDER });
    expect(done.name).toBe('phi3-onnx-cpu-int4-rtn-block-32-acc-level-4');
    expect(done.servable).toMatchObject({ kind: 'chat', layout: 'genai', root: 'model/' });
    const files = await storedFiles(db, done.versionId);
    for (const [path, bytes] of genai) {
      if (!path.startsWith(`${GENAI_FOLDER}/`)) continue;
      expectSameBytes(files.get(`model/${path.slice(GENAI_FOLDER.length + 1)}`), bytes);
    }
    expect([...files.keys()].some((p) => p.includes('cuda') || p.includes('README'))).toBe(false);
    const v = await new RegistryClient(db).getModelVersion(done.name, 1);
    expect(v.source).toBe(`hf:/tiny/phi3-onnx/${GENAI_FOLDER}`);
    expect(v.tags['hf.subfolder']).toBe(GENAI_FOLDER);
  });
});

describe('resuming', () => {
  const DATA = 'onnx/model_q4.onnx_data';

  it('a dropped connection resumes from the last complete chunk with a Range request', async () => {
    const { db } = await fresh();
    reset();
    // Cut the big file after 2.5 chunks: two chunks are stored, the half chunk is thrown away.
    server.drops.push({ path: DATA, afterBytes: 2.5 * MiB });
    const retries: DownloadProgress[] = [];
    const done = await hub(db).download(
      { repoId: 'tiny/phi3-web', dtype: 'q4' },
      { onProgress: (p) => p.retry && retries.push(p) },
    );
    expect(retries.length).toBe(1);
    expect(retries[0]!.retry?.message).toMatch(/closed|terminated|socket|network/i);
    const dataRequests = server.requests.filter((r) =>
      r.path.endsWith(`/resolve/${repoOf(web, 'web').sha}/${DATA}`),
    );
    expect(dataRequests.map((r) => r.range)).toEqual([null, `bytes=${2 * MiB}-`]);
    const files = await storedFiles(db, done.versionId);
    expectSameBytes(files.get(`model/${DATA}`), web.get(DATA));
  });

  it('a server that ignores Range still yields the right bytes', async () => {
    const { db } = await fresh();
    reset({ ignoreRange: true });
    server.drops.push({ path: DATA, afterBytes: 3.2 * MiB });
    const done = await hub(db).download({ repoId: 'tiny/phi3-web', dtype: 'q4' });
    expect(server.requests.some((r) => r.range === `bytes=${3 * MiB}-`)).toBe(true);
    expectSameBytes((await storedFiles(db, done.versionId)).get(`model/${DATA}`), web.get(DATA));
  });

  it('a 206 without a readable Content-Range is trusted when its length fits', async () => {
    const { db } = await fresh();
    reset({ omitContentRange: true });
    server.drops.push({ path: DATA, afterBytes: 1.5 * MiB });
    const done = await hub(db).download({ repoId: 'tiny/phi3-web', dtype: 'q4' });
    expect(server.requests.some((r) => r.range === `bytes=${MiB}-`)).toBe(true);
    expectSameBytes((await storedFiles(db, done.versionId)).get(`model/${DATA}`), web.get(DATA));
  });

  it('after the connection stays down, the download is kept as interrupted and resumes later', async () => {
    const { db } = await fresh();
    reset();
    server.drops.push({ path: DATA, afterBytes: 4.5 * MiB });
    const h = hub(db, { maxRetries: 0 });
    const plan = await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' });
    const rec = await h.create(plan);
    await expect(h.run(rec.id)).rejects.toThrow(
      /connection to the Hub dropped.*resume to continue/,
    );
    const kept = (await h.get(rec.id))!;
    expect(kept.status).toBe('interrupted');
    expect(kept.files.find((f) => f.remotePath === DATA)?.chunksDone).toBe(4);

    const done = await h.run(rec.id);
    expect(server.requests.filter((r) => r.range !== null).map((r) => r.range)).toEqual([
      `bytes=${4 * MiB}-`,
    ]);
    expectSameBytes((await storedFiles(db, done.versionId)).get(`model/${DATA}`), web.get(DATA));
  });

  it('a closed tab: a paused download survives reopening the database and finishes from there', async () => {
    const { db, name } = await fresh();
    reset({ throttle: { bytes: 256 * 1024, delayMs: 2 } });
    const h = hub(db);
    const rec = await h.create(await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' }));
    const ac = new AbortController();
    const run = h.run(rec.id, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.bytesDone > 3 * MiB) ac.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(DownloadPausedError);
    db.close();

    // "Next visit": a new connection and a new service instance find the unfinished download.
    const db2 = await openDatabase({ name });
    const h2 = hub(db2);
    const [found] = await h2.list();
    expect(found?.id).toBe(rec.id);
    expect(found?.status).toBe('paused');
    const stored = found!.files.find((f) => f.remotePath === DATA)!.chunksDone;
    expect(stored).toBeGreaterThanOrEqual(2);
    server.requests.length = 0;
    server.options = {};
    const done = await h2.run(rec.id);
    expect(server.requests.map((r) => r.range).filter(Boolean)).toEqual([`bytes=${stored * MiB}-`]);
    const files = await storedFiles(db2, done.versionId);
    for (const p of ['config.json', 'tokenizer.json', 'onnx/model_q4.onnx', DATA])
      expectSameBytes(files.get(`model/${p}`), web.get(p));
    db2.close();
  });
});

describe('registering once', () => {
  it('a download whose version was created before the tab closed is not registered twice', async () => {
    const { db } = await fresh();
    reset();
    const h = hub(db);
    const rec = await h.create(await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' }));
    const done = await h.run(rec.id);
    // Put the record back as if forgetting it had not happened.
    await db.put('downloads', { ...rec, files: rec.files.map((f) => ({ ...f, chunksDone: 99 })) });
    const again = await h.run(rec.id);
    expect(again).toMatchObject({ name: done.name, version: '1', versionId: done.versionId });
    expect(await new RegistryClient(db).listModelVersions(done.name)).toHaveLength(1);
    expect(await h.list()).toEqual([]);
  });
});

describe('cancel and quota', () => {
  it('cancel deletes every stored chunk, also while the download runs', async () => {
    const { db } = await fresh();
    reset({ throttle: { bytes: 256 * 1024, delayMs: 2 } });
    const h = hub(db);
    const rec = await h.create(await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' }));
    let cancelled: Promise<void> | undefined;
    const run = h.run(rec.id, {
      onProgress: (p) => {
        if (p.bytesDone > 2 * MiB && !cancelled) cancelled = h.cancel(rec.id);
      },
    });
    await expect(run).rejects.toBeInstanceOf(DownloadGoneError);
    await cancelled;
    expect(await countChunks(db)).toEqual({ chunks: 0, files: 0 });
    expect(await h.list()).toEqual([]);
    expect((await new RegistryClient(db).searchRegisteredModels()).models).toEqual([]);

    // And a paused one.
    reset();
    const rec2 = await h.create(await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' }));
    const ac = new AbortController();
    await expect(
      h.run(rec2.id, {
        signal: ac.signal,
        onProgress: (p) => p.bytesDone > MiB && ac.abort(),
      }),
    ).rejects.toBeInstanceOf(DownloadPausedError);
    expect((await countChunks(db)).chunks).toBeGreaterThan(0);
    await h.cancel(rec2.id);
    expect(await countChunks(db)).toEqual({ chunks: 0, files: 0 });
  });

  it('a too-small quota refuses before anything is fetched, with the size needed and available', async () => {
    const { db } = await fresh();
    reset();
    const h = hub(db, { estimate: async () => ({ quota: 8_000_000, usage: 3_000_000 }) });
    const plan = await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' });
    server.requests.length = 0;
    const e = await h.create(plan).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DownloadQuotaError);
    const q = e as DownloadQuotaError;
    expect(q.neededBytes).toBe(plan.totalBytes);
    expect(q.availableBytes).toBe(5_000_000);
    expect(q.message).toContain('it needs 10.6 MB');
    expect(q.message).toContain('only 5.00 MB more (3.00 MB used of 8.00 MB)');
    expect(server.requests).toEqual([]);
    expect(await h.list()).toEqual([]);
    expect(await countChunks(db)).toEqual({ chunks: 0, files: 0 });
  });

  it('an HTTP error that retrying cannot fix fails at once with the reason', async () => {
    const { db } = await fresh();
    reset();
    const h = hub(db);
    const plan = await h.plan({ repoId: 'tiny/phi3-web', dtype: 'q4' });
    plan.files[0] = { ...plan.files[0]!, path: 'gone.json' };
    const rec = await h.create(plan);
    await expect(h.run(rec.id)).rejects.toThrow(HubError);
    expect((await h.get(rec.id))?.status).toBe('failed');
    expect((await h.get(rec.id))?.error).toMatch(/gone\.json .*HTTP 404/);
  });
});

describe('speed and time left', () => {
  it('reads as bytes, rate and time left', () => {
    expect(
      progressText({
        bytesDone: 1_200_000_000,
        totalBytes: 2_400_000_000,
        bytesPerSecond: 35_200_000,
        etaSeconds: 34.4,
      }),
    ).toBe('1.20 GB of 2.40 GB · 35.2 MB/s · 34 s left');
    expect(
      progressText({ bytesDone: 0, totalBytes: 10, bytesPerSecond: 0, etaSeconds: null }),
    ).toBe('0 B of 10 B');
    expect(formatDuration(3 * 3600 + 5 * 60 + 9)).toBe('3 h 05 min');
    expect(formatDuration(249)).toBe('4 min 09 s');
  });

  it('measures over a sliding window and restarts when bytes go back', () => {
    const m = new RateMeter(5000);
    expect(m.eta(100)).toBeNull();
    m.add(0, 0);
    m.add(1000, 1000);
    m.add(2000, 2000);
    expect(m.rate()).toBe(1000);
    expect(m.eta(5000)).toBe(5);
    m.add(9000, 3000);
    expect(m.rate()).toBeCloseTo(1000 / 7, 5);
    m.add(9500, 100);
    expect(m.rate()).toBe(0);
  });
});
