import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { TrackingClient } from '../../src/lib/services/tracking.ts';
import { exportMlrunsFiles, importMlruns } from '../../src/lib/services/mlruns-io.ts';

// MLflow's file store deletes an experiment by moving it to .trash/ and leaves its runs' own
// lifecycle alone (the SQL store marks them deleted too). The app keeps the file-store behaviour:
// the experiment hides its runs, and restoring it brings every run back as it was.
let n = 0;
const freshDb = () => openDatabase({ name: `experiment-delete-${n++}` });

describe('deleting and restoring an experiment', () => {
  it('hides the experiment, keeps its runs as they were, and restores everything', async () => {
    const t = new TrackingClient(await freshDb());
    const exp = await t.createExperiment('short-lived');
    const a = await t.startRun({ experimentId: exp, runName: 'a' });
    await t.logParam(a.runId, 'lr', '0.1');
    await t.logMetric(a.runId, 'acc', 0.9, { step: 1 });
    await t.logText(a.runId, 'hi', 'notes.txt');
    await t.endRun(a.runId);
    const b = await t.startRun({ experimentId: exp, runName: 'b' });
    await t.endRun(b.runId);
    await t.deleteRun(b.runId);
    const before = await t.searchRuns({ experimentIds: [exp], runViewType: 'ALL' });

    await t.deleteExperiment(exp);
    expect((await t.listExperiments()).map((e) => e.experimentId)).not.toContain(exp);
    expect((await t.getExperiment(exp)).lifecycleStage).toBe('deleted');
    // The runs keep their own lifecycle: a stays active, b stays deleted.
    expect((await t.getRun(a.runId)).info.lifecycleStage).toBe('active');
    expect((await t.getRun(b.runId)).info.lifecycleStage).toBe('deleted');
    await expect(t.startRun({ experimentId: exp })).rejects.toThrow(
      /must be in the 'active' state/,
    );

    await t.restoreExperiment(exp);
    expect((await t.getExperiment(exp)).lifecycleStage).toBe('active');
    const after = await t.searchRuns({ experimentIds: [exp], runViewType: 'ALL' });
    expect(after).toEqual(before);
    expect(await t.getMetricHistory(a.runId, 'acc')).toHaveLength(1);
    expect(await t.readArtifactText(a.runId, 'notes.txt')).toBe('hi');
    const active = await t.searchRuns({ experimentIds: [exp] });
    expect(active.runs.map((r) => r.info.runName)).toEqual(['a']);
  });

  it('travels through an mlruns export as .trash/ and comes back whole on restore', async () => {
    const t = new TrackingClient(await freshDb());
    const exp = await t.createExperiment('trashed');
    const r = await t.startRun({ experimentId: exp, runName: 'r' });
    await t.logMetric(r.runId, 'loss', 0.5);
    await t.endRun(r.runId);
    await t.deleteExperiment(exp);
    const files = await exportMlrunsFiles(t.db, { experimentIds: [exp] });
    expect([...files.keys()].some((p) => p.startsWith(`.trash/${exp}/${r.runId}/`))).toBe(true);

    const t2 = new TrackingClient(await freshDb());
    const zipLike = new Map(
      [...files].filter(([, v]) => v !== null).map(([k, v]) => [`mlruns/${k}`, v!]),
    );
    await importMlruns(t2.db, zipLike);
    expect((await t2.getExperiment(exp)).lifecycleStage).toBe('deleted');
    await t2.restoreExperiment(exp);
    const { runs } = await t2.searchRuns({ experimentIds: [exp] });
    expect(runs.map((x) => [x.info.runId, x.metrics['loss']?.value])).toEqual([[r.runId, 0.5]]);
  });
});
