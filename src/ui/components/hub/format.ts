/** Display helpers for the download progress line. */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'] as const;

/** Decimal units, as file managers show them: `1.50 GB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

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
