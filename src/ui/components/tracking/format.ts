/** Display formatting shared by the tracking pages. */

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function formatDuration(start: number, end: number | null | undefined): string {
  if (end === null || end === undefined) return '—';
  let s = Math.max(0, (end - start) / 1000);
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s = Math.round(s - m * 60);
  return h > 0 ? `${h}h ${m}m` : `${m}m ${s}s`;
}

export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(4);
  return String(+v.toPrecision(6));
}
