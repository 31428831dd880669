// The off-thread zip helpers give the same files and the same documented errors as the guarded
// unzip on the calling thread (in Node there is no Worker, so this is their in-thread path; the
// worker path runs in tests/browser/reliability-long-tasks.spec.ts through the mlruns import).
import { describe, expect, it } from 'vitest';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { unzipGuardedOffThread, zipOffThread } from '../../src/lib/archive/zip-off-thread.ts';
import { unzipGuardedSync } from '../../src/lib/archive/mlruns-unzip.ts';
import { unzipGuarded } from '../../src/lib/services/mlruns-io.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

const tree = {
  'mlruns/1/meta.yaml': strToU8('name: a\n'),
  'mlruns/1/abc/params/lr': strToU8('0.01'),
  'mlruns/1/abc/artifacts/big.bin': new Uint8Array(200_000).map((_, i) => i & 0xff),
};

describe('zip work off the main thread', () => {
  it('unzips a zip (bytes or Blob) to the same files as the guarded unzip', async () => {
    const zip = zipSync(tree);
    const expected = unzipGuarded(zip);
    expect(await unzipGuardedOffThread(zip)).toEqual(expected);
    expect(await unzipGuardedOffThread(new Blob([zip as BlobPart]))).toEqual(expected);
    expect(unzipGuardedSync(zip)).toEqual(expected);
    expect([...expected.keys()].sort()).toEqual(Object.keys(tree).sort());
  });

  it('refuses traversal, too many files and non-zips with MlflowError', async () => {
    const evil = zipSync({ '../escape.txt': strToU8('x') });
    await expect(unzipGuardedOffThread(evil)).rejects.toThrow(MlflowError);
    await expect(unzipGuardedOffThread(evil)).rejects.toThrow(/'\.\.' segment/);
    await expect(unzipGuardedOffThread(zipSync(tree), { maxEntries: 2 })).rejects.toThrow(
      /more than 2 files/,
    );
    await expect(unzipGuardedOffThread(strToU8('not a zip'))).rejects.toThrow(/Not a readable zip/);
  });

  it('zips to an archive that unzips to the same files', async () => {
    const zip = await zipOffThread({ ...tree });
    expect(unzipSync(zip)).toEqual(tree);
  });
});
