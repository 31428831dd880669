import { StorageQuotaError, formatBytes } from './blobs.ts';

/**
 * Refusing early: before a large write (an import, a restore, a download) the app compares what
 * it is about to store with what the browser says is left (`navigator.storage.estimate()`), and
 * refuses with the numbers instead of failing half-way. The estimate is approximate (Chromium
 * pads it), so a margin is added to the need; a write that still hits the quota fails with
 * StorageQuotaError from blobs.ts and rolls back.
 */

export interface StorageEstimateLike {
  usage?: number;
  quota?: number;
}

export type EstimateFn = () => Promise<StorageEstimateLike | null>;

/** Refused before anything was written: not enough space for `what`. */
export class InsufficientStorageError extends StorageQuotaError {
  override name = 'InsufficientStorageError';
  constructor(
    /** Bytes the write needs, margin included. */
    neededBytes: number,
    /** Bytes the browser says are left to this site. */
    readonly availableBytes: number,
    readonly usageBytes: number,
    readonly quotaBytes: number,
    /** What was going to be stored (a file name, "the backup"...). */
    readonly what: string,
  ) {
    super(neededBytes);
    this.message =
      `Not enough storage for ${what}: it needs about ${formatBytes(neededBytes)}, and the browser ` +
      `allows ${formatBytes(availableBytes)} more (${formatBytes(usageBytes)} used of ` +
      `${formatBytes(quotaBytes)}). Nothing was written. Free space in Settings → Storage ` +
      `(delete model weights or experiments), or free disk space on this computer.`;
  }
}

export interface QuotaCheck {
  /** False when the browser does not report an estimate (then nothing was checked). */
  checked: boolean;
  neededBytes: number;
  availableBytes: number | null;
  usageBytes: number | null;
  quotaBytes: number | null;
}

/** Headroom on top of the payload: record overhead and the estimate's own imprecision. */
export function withMargin(bytes: number): number {
  return Math.ceil(bytes * 1.05) + 8 * 1024 * 1024;
}

export async function browserEstimate(): Promise<StorageEstimateLike | null> {
  const storage = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!storage?.estimate) return null;
  try {
    return await storage.estimate();
  } catch {
    return null;
  }
}

/**
 * Throws InsufficientStorageError when `payloadBytes` (plus margin) do not fit in what the browser
 * reports as left. Resolves with the numbers otherwise (or `checked: false` when unknown).
 */
export async function ensureSpaceFor(
  payloadBytes: number,
  what: string,
  estimate: EstimateFn = browserEstimate,
): Promise<QuotaCheck> {
  const needed = withMargin(Math.max(0, payloadBytes));
  const est = await estimate();
  if (!est || typeof est.quota !== 'number' || !Number.isFinite(est.quota)) {
    return {
      checked: false,
      neededBytes: needed,
      availableBytes: null,
      usageBytes: null,
      quotaBytes: null,
    };
  }
  const usage = typeof est.usage === 'number' ? est.usage : 0;
  const available = Math.max(0, est.quota - usage);
  if (needed > available) {
    throw new InsufficientStorageError(needed, available, usage, est.quota, what);
  }
  return {
    checked: true,
    neededBytes: needed,
    availableBytes: available,
    usageBytes: usage,
    quotaBytes: est.quota,
  };
}
