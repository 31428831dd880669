// Weights written into IndexedDB by the blob store must read back in the browser session that
// wrote them. Chromium keeps Blob data in memory up to a limit (about 2 GiB here) and pages the
// rest to disk in a profile on disk; an off-the-record context (Playwright's newContext) has no
// disk, so Blob data past that limit is lost there. This writes a file through the app's own
// writeBlob, from the page and from a worker, and reads every byte back in the same session:
// chunk by chunk, through readBlob's whole-file Blob (synchronously in a worker, as the inference
// worker does) and by range. TABFLOW_BLOB_STORE_MIB sets the size (256 MiB by default; 3072 is
// the full-size check, run by hand: docs/PERFORMANCE.md, storage section).
import { chromium, expect, test, type Browser, type Page } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sampleTree } from '../../bench/support/process-memory.ts';
import {
  buildBlobHarness,
  removeBlobHarness,
  serveBlobHarness,
} from './support/blob-store-harness/build.ts';
import type { BlobHarness } from './support/blob-store-harness/entry.ts';
import type { OpArgs, OpName, OpResult } from './support/blob-store-harness/ops.ts';

declare global {
  interface Window {
    __blobHarness: BlobHarness;
  }
}

const MIB = Number(process.env.TABFLOW_BLOB_STORE_MIB ?? 256);
/** Chunks per transaction (the store's default unless set). */
const TX = process.env.TABFLOW_BLOB_STORE_TX
  ? Number(process.env.TABFLOW_BLOB_STORE_TX)
  : undefined;
/**
 * Off-the-record contexts hold IndexedDB and Blob data in memory (about 2 GiB of Blobs here):
 * up to OTR_MAX_MIB a file must read back; from OTR_REFUSED_FROM_MIB its write must fail clearly.
 */
const OTR_MAX_MIB = 1024;
const OTR_REFUSED_FROM_MIB = 2560;
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let dist = '';
let server: Awaited<ReturnType<typeof serveBlobHarness>>;

test.beforeAll(async () => {
  test.setTimeout(180_000);
  dist = await buildBlobHarness();
  server = await serveBlobHarness(dist);
});

test.afterAll(async () => {
  await server?.close();
  if (dist) removeBlobHarness(dist);
});

const mbs = (r: OpResult) => (r.ms > 0 ? (r.bytes / 1e6 / (r.ms / 1000)).toFixed(0) : '-');

async function run(
  page: Page,
  where: 'page' | 'worker',
  op: OpName,
  args: OpArgs,
): Promise<OpResult> {
  // Playwright starts Chromium as a child of this process: its processes are our descendants.
  const mem = sampleTree(process.pid, true);
  const r = await page.evaluate(
    ({ where, op, args }) => window.__blobHarness.run(where, op, args),
    { where, op, args },
  );
  const m = mem.stop();
  console.log(
    `  ${where.padEnd(6)} ${op.padEnd(9)} ${(r.bytes / 2 ** 20).toFixed(0).padStart(5)} MiB ` +
      `${mbs(r).padStart(5)} MB/s, Chromium PSS peak ${(m.peak / 2 ** 20).toFixed(0)} MiB, ` +
      `after ${(m.last / 2 ** 20).toFixed(0)} MiB` +
      `${r.retries ? `, ${r.retries} transaction(s) written again` : ''}${r.error ? `: ${r.error}` : ''}`,
  );
  return r;
}

/**
 * Writes through writeBlob from the page and from a worker and reads each back every way. With
 * `mayRefuse` (an off-the-record context, whose in-memory Blob room is shared with whatever the
 * browser still holds), a write may instead be refused with StoredDataUnreadableError, and then
 * nothing of it may be left stored.
 */
async function writeAndReadBack(page: Page, label: string, mayRefuse = false): Promise<void> {
  await page.goto(server.url);
  await page.waitForFunction(() => '__blobHarness' in window);
  const size = MIB * 2 ** 20;
  console.log(`${label}: ${MIB} MiB through writeBlob, read back in the same session`);
  for (const writer of ['page', 'worker'] as const) {
    const args: OpArgs = {
      db: 'tabflow-blob-harness',
      id: `written-in-${writer}`,
      mib: MIB,
      ...(TX ? { chunksPerTransaction: TX } : {}),
    };
    const w = await run(page, writer, 'write', args);
    if (mayRefuse && w.error && /StoredDataUnreadableError/.test(w.error)) {
      const left = await run(page, 'page', 'chunks', args);
      expect(left.error, `${label}: a refused write leaves nothing`).toMatch(
        /No stored file with id/,
      );
      continue;
    }
    expect(w.error, `${label}, written in the ${writer}`).toBeUndefined();
    expect(w.bytes).toBe(size);
    for (const [where, op] of [
      ['worker', 'chunks'],
      ['worker', 'wholeBlob'],
      ['page', 'wholeBlob'],
      ['page', 'ranges'],
    ] as const) {
      const r = await run(page, where, op, args);
      expect(r.error, `${label}, written in the ${writer}, ${op} in the ${where}`).toBeUndefined();
      if (op !== 'ranges') expect(r.bytes).toBe(size);
    }
    // Gone before the next write, so both never hold the disk at once.
    await run(page, 'page', 'remove', args);
  }
}

test(`persistent profile: ${MIB} MiB read back byte-exact in the session that wrote it`, async () => {
  test.setTimeout(Math.max(120_000, MIB * 800));
  const profile = mkdtempSync(join(tmpdir(), 'blob-store-profile-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    ...(process.env.CHROMIUM_PATH ? { executablePath: process.env.CHROMIUM_PATH } : {}),
    args: ARGS,
  });
  try {
    await writeAndReadBack(ctx.pages()[0] ?? (await ctx.newPage()), 'persistent profile');
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

test(`off-the-record context: ${MIB} MiB read back byte-exact in the session that wrote it, or refused at once`, async ({
  browser,
}: {
  browser: Browser;
}) => {
  test.skip(
    MIB > OTR_MAX_MIB && MIB < OTR_REFUSED_FROM_MIB,
    'between these sizes an off-the-record context may or may not hold the file',
  );
  test.setTimeout(Math.max(120_000, MIB * 800));
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    if (MIB <= OTR_MAX_MIB) {
      await writeAndReadBack(page, 'off-the-record context', true);
      return;
    }
    // Past the in-memory Blob limit the write must fail with a clear error, not store a file
    // that cannot be read back.
    await page.goto(server.url);
    await page.waitForFunction(() => '__blobHarness' in window);
    const args: OpArgs = { db: 'tabflow-blob-harness', id: 'too-big', mib: MIB };
    const w = await run(page, 'page', 'write', args);
    expect(w.error).toMatch(/StoredDataUnreadableError|StorageQuotaError/);
    const r = await run(page, 'page', 'chunks', args);
    expect(r.error).toMatch(/No stored file with id too-big/);
  } finally {
    await ctx.close();
  }
});
