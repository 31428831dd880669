// Bundled into the Chromium page by ../tracking.bench.ts.
import { runTrackingBench, type BenchOptions } from './cases.ts';

(window as unknown as { runBench(o: BenchOptions): Promise<void> }).runBench = (o) =>
  runTrackingBench(o, (s) => console.log(s));
