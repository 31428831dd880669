/** Display helpers for the download progress line. */

import { formatBytes } from '../../lib/format.ts';

/** `3 h 05 min`, `4 min 09 s`, `12 s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (x: number) => String(x).padStart(2, '0');
  if (h > 0) return `${h} h ${two(m)} min`;
  if (m > 0) return `${m} min ${two(sec)} s`;
  return `${sec} s`;
}

export interface ProgressNumbers {
  bytesDone: number;
  totalBytes: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

/** `1.20 GB of 2.40 GB · 35.2 MB/s · 34 s left`. */
export function progressText(p: ProgressNumbers): string {
  const parts = [`${formatBytes(p.bytesDone)} of ${formatBytes(p.totalBytes)}`];
  if (p.bytesPerSecond > 0) parts.push(`${formatBytes(p.bytesPerSecond)}/s`);
  if (p.etaSeconds !== null && p.bytesDone < p.totalBytes)
    parts.push(`${formatDuration(p.etaSeconds)} left`);
  return parts.join(' · ');
}
