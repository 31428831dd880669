// Page side of the blob store harness (built and served by build.ts, driven by
// tests/browser/blob-store-same-session.spec.ts): each op runs in the page or in a fresh worker.
import { ops, type OpArgs, type OpName, type OpResult } from './ops.ts';

export interface BlobHarness {
  run(where: 'page' | 'worker', op: OpName, args: OpArgs): Promise<OpResult>;
}

const harness: BlobHarness = {
  async run(where, op, args) {
    if (where === 'page') return ops[op](args);
    const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
    try {
      return await new Promise<OpResult>((ok, bad) => {
        w.onmessage = (e: MessageEvent<OpResult>) => ok(e.data);
        w.onerror = (e) => bad(new Error(`worker: ${e.message}`));
        w.postMessage({ op, args });
      });
    } finally {
      w.terminate();
    }
  },
};

(globalThis as { __blobHarness?: BlobHarness }).__blobHarness = harness;
