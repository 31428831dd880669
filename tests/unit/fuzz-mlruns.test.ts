// Property-based tests of the mlruns reader: any file tree either reads or fails with
// MlrunsParseError / MlflowError naming the file; generated experiments written by the writer read
// back as the same entities.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MlrunsParseError,
  readMlruns,
  writeExperimentFolder,
  type RunForWriting,
} from '../../src/lib/mlflow/mlruns/index.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';
import type { Experiment, Metric, RunInfo, RunStatus } from '../../src/lib/mlflow/entities.ts';

const enc = new TextEncoder();

function onlyDocumented(files: Map<string, Uint8Array>): void {
  try {
    readMlruns(files);
  } catch (e) {
    if (e instanceof MlrunsParseError || e instanceof MlflowError) return;
    throw new Error(`undocumented ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

const EXP = '412345678901234567';
const RUN = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

const GOOD_EXP_META = `artifact_location: file:///tmp/mlruns/${EXP}\ncreation_time: 1721450907221\nexperiment_id: '${EXP}'\nlast_update_time: 1721450907221\nlifecycle_stage: active\nname: fuzz\n`;
const GOOD_RUN_META = `artifact_uri: file:///tmp/mlruns/${EXP}/${RUN}/artifacts\ndeleted_time: null\nend_time: 1721450907230\nentry_point_name: ''\nexperiment_id: '${EXP}'\nlifecycle_stage: active\nrun_id: ${RUN}\nrun_name: r\nrun_uuid: ${RUN}\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: 1721450907221\nstatus: 3\ntags: []\nuser_id: u\n`;

const pathTemplate = fc.constantFrom(
  `mlruns/${EXP}/meta.yaml`,
  `mlruns/${EXP}/tags/team`,
  `mlruns/${EXP}/${RUN}/meta.yaml`,
  `mlruns/${EXP}/${RUN}/metrics/acc`,
  `mlruns/${EXP}/${RUN}/metrics/a/b`,
  `mlruns/${EXP}/${RUN}/params/lr`,
  `mlruns/${EXP}/${RUN}/tags/mlflow.runName`,
  `mlruns/${EXP}/${RUN}/artifacts/x.txt`,
  `mlruns/${EXP}/${RUN}/inputs/abc/meta.yaml`,
  `mlruns/${EXP}/datasets/abc/meta.yaml`,
  `mlruns/.trash/${EXP}/meta.yaml`,
  `mlruns/0/meta.yaml`,
  `mlruns/models/m/meta.yaml`,
  `mlruns/${EXP}/models/m-1/meta.yaml`,
  `mlruns/${EXP}/traces/t/trace_info.yaml`,
);
const yamlFragment = fc.constantFrom(
  GOOD_EXP_META,
  GOOD_RUN_META,
  'name: x\n',
  "experiment_id: '1'\n",
  'status: 9\n',
  'start_time: abc\n',
  'lifecycle_stage: deleted\n',
  'a: &a [1]\nb: *a\n',
  'x: !!python/object:os.system ls\n',
  '- list\n',
  '{flow: map}\n',
  ': : :\n',
  '1721450907221 0.5 0\n',
  '1721450907221 nan 1\n',
  '1721450907221 inf -1\n',
  'x y z w\n',
  '\u0000\uffff',
  '\t',
);
const fileContent = fc.oneof(
  fc
    .array(fc.oneof(yamlFragment, fc.string({ maxLength: 16 })), { maxLength: 6 })
    .map((p) => enc.encode(p.join(''))),
  fc.uint8Array({ maxLength: 64 }),
);

describe('mlruns reader under arbitrary trees', () => {
  it('throws only MlrunsParseError / MlflowError', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(pathTemplate, fc.string({ maxLength: 30 })), fileContent), {
          maxLength: 8,
        }),
        fc.boolean(),
        (entries, withBase) => {
          const files = new Map<string, Uint8Array>();
          if (withBase) {
            files.set(`mlruns/${EXP}/meta.yaml`, enc.encode(GOOD_EXP_META));
            files.set(`mlruns/${EXP}/${RUN}/meta.yaml`, enc.encode(GOOD_RUN_META));
          }
          for (const [p, c] of entries) files.set(p, c);
          onlyDocumented(files);
        },
      ),
      { numRuns: 600 },
    );
  });

  // The yaml package stops the expansion with a ReferenceError; the reader reports it as the
  // documented error.
  it('an alias bomb in meta.yaml is refused with MlrunsParseError', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const files = new Map([
      [`mlruns/${EXP}/meta.yaml`, enc.encode(GOOD_EXP_META + lines.join('\n'))],
    ]);
    expect(() => readMlruns(files)).toThrow(MlrunsParseError);
  });

  it('an alias bomb is stopped quickly (no expansion)', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const files = new Map([
      [`mlruns/${EXP}/meta.yaml`, enc.encode(GOOD_EXP_META + lines.join('\n'))],
    ]);
    const t0 = performance.now();
    expect(() => readMlruns(files)).toThrow();
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

// ---------------------------------------------------------------- round trip

const key = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,14}$/)
  .filter((k) => !k.endsWith(' ') && !k.includes('..'));
const text = fc.string({ maxLength: 40 });
const STATUSES: RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];
const time = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });
const metricValue = fc.oneof(
  fc.double({ noNaN: false }),
  fc.constantFrom(
    0,
    -0.5,
    1e-300,
    1e300,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Number.NaN,
  ),
);
const hex32 = fc.stringMatching(/^[0-9a-f]{32}$/);

const run = fc.record({
  runId: hex32,
  runName: fc.stringMatching(/^[A-Za-z0-9 _-]{1,20}$/),
  status: fc.constantFrom(...STATUSES),
  start: time,
  end: fc.option(time, { nil: null }),
  params: fc.dictionary(key, text, { maxKeys: 4 }),
  tags: fc.dictionary(key, text, { maxKeys: 3 }),
  metrics: fc.dictionary(
    key,
    fc.array(
      fc.record({ value: metricValue, timestamp: time, step: fc.integer({ min: -5, max: 1e6 }) }),
      {
        minLength: 1,
        maxLength: 5,
      },
    ),
    { maxKeys: 3 },
  ),
});

describe('mlruns writer and reader agree', () => {
  it('readMlruns(writeExperimentFolder(x)) gives back the same experiment and runs', () => {
    fc.assert(
      fc.property(
        fc.record({
          name: fc
            .stringMatching(/^[^\n\r\u0000]{1,30}$/)
            .filter((s) => s.trim() === s && s.length > 0),
          tags: fc.dictionary(key, text, { maxKeys: 3 }),
          created: time,
          runs: fc.uniqueArray(run, { maxLength: 3, selector: (r) => r.runId }),
        }),
        (g) => {
          const experiment: Experiment = {
            experimentId: EXP,
            name: g.name,
            artifactLocation: `file:///tmp/mlruns/${EXP}`,
            lifecycleStage: 'active',
            creationTime: g.created,
            lastUpdateTime: g.created,
            tags: g.tags,
          };
          const runs: RunForWriting[] = g.runs.map((r) => ({
            info: {
              runId: r.runId,
              experimentId: EXP,
              runName: r.runName,
              userId: 'u',
              status: r.status,
              startTime: r.start,
              endTime: r.end,
              artifactUri: `file:///tmp/mlruns/${EXP}/${r.runId}/artifacts`,
              lifecycleStage: 'active',
            },
            deletedTime: null,
            params: r.params,
            tags: { ...r.tags, 'mlflow.runName': r.runName },
            metrics: Object.fromEntries(
              Object.entries(r.metrics).map(([k, pts]) => [
                k,
                pts.map((p): Metric => ({ key: k, ...p })),
              ]),
            ),
            inputs: [],
          }));
          const { files } = writeExperimentFolder(experiment, runs);
          const tree = readMlruns(new Map([...files].map(([p, b]) => [`mlruns/${EXP}/${p}`, b])));
          expect(tree.experiments).toHaveLength(1);
          const x = tree.experiments[0]!;
          expect(x.experiment).toEqual(experiment);
          const byId = new Map(x.runs.map((r) => [r.info.runId, r]));
          for (const w of runs) {
            const r = byId.get(w.info.runId)!;
            expect(r.info).toEqual(w.info);
            expect(r.params).toEqual(w.params);
            expect(r.tags).toEqual(w.tags);
            expect(r.metrics).toEqual(w.metrics);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('plain scalars that PyYAML reads as strings', () => {
  // PyYAML (YAML 1.1) writes these unquoted and reads them back as strings; YAML 1.2 readers
  // see numbers. String keys keep the text as written.
  const names = ['0e0', '1e5', '1E+5', '-0e0', '0o17', '12e3'];

  it('a meta.yaml written by MLflow reads them as the names they are', () => {
    for (const n of names) {
      const meta = GOOD_RUN_META.replace('run_name: r\n', `run_name: ${n}\n`);
      const expMeta = GOOD_EXP_META.replace('name: fuzz\n', `name: ${n}\n`);
      const tree = readMlruns(
        new Map([
          [`mlruns/${EXP}/meta.yaml`, enc.encode(expMeta)],
          [`mlruns/${EXP}/${RUN}/meta.yaml`, enc.encode(meta)],
        ]),
      );
      const x = tree.experiments[0]!;
      expect(x.experiment.name).toBe(n);
      expect(x.runs[0]!.info.runName).toBe(n);
    }
  });

  it('the writer and the reader round-trip them', () => {
    for (const n of names) {
      const experiment: Experiment = {
        experimentId: EXP,
        name: n,
        artifactLocation: `file:///tmp/mlruns/${EXP}`,
        lifecycleStage: 'active',
        creationTime: 1_700_000_000_000,
        lastUpdateTime: 1_700_000_000_000,
        tags: {},
      };
      const info: RunInfo = {
        runId: RUN,
        experimentId: EXP,
        runName: n,
        userId: 'u',
        status: 'FINISHED',
        startTime: 1_700_000_000_000,
        endTime: 1_700_000_001_000,
        artifactUri: `file:///tmp/mlruns/${EXP}/${RUN}/artifacts`,
        lifecycleStage: 'active',
      };
      const { files } = writeExperimentFolder(experiment, [
        { info, deletedTime: null, params: {}, tags: {}, metrics: {}, inputs: [] },
      ]);
      const tree = readMlruns(new Map([...files].map(([p, b]) => [`mlruns/${EXP}/${p}`, b])));
      expect(tree.experiments[0]!.experiment.name).toBe(n);
      expect(tree.experiments[0]!.runs[0]!.info).toEqual(info);
    }
  });
});
