/** Pure helpers behind the charts: display downsampling, smoothing, CSV. */

/**
 * Min/max downsampling for display: each bucket of x keeps its lowest and highest point (in x
 * order), so spikes survive. `xs` must be sorted ascending. Returns the inputs when already small.
 */
export function downsampleMinMax(
  xs: ArrayLike<number>,
  ys: ArrayLike<number>,
  buckets: number,
): { x: number[]; y: number[] } {
  const n = xs.length;
  if (n <= buckets * 2 || buckets < 1) return { x: Array.from(xs), y: Array.from(ys) };
  const x: number[] = [];
  const y: number[] = [];
  const per = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * per);
    const end = Math.min(n, Math.floor((b + 1) * per));
    if (end <= start) continue;
    let lo = start;
    let hi = start;
    for (let i = start + 1; i < end; i++) {
      const v = ys[i]!;
      if (v < ys[lo]! || Number.isNaN(ys[lo]!)) lo = i;
      if (v > ys[hi]! || Number.isNaN(ys[hi]!)) hi = i;
    }
    const first = Math.min(lo, hi);
    const second = Math.max(lo, hi);
    x.push(xs[first]!);
    y.push(ys[first]!);
    if (second !== first) {
      x.push(xs[second]!);
      y.push(ys[second]!);
    }
  }
  return { x, y };
}

/**
 * Exponential moving average with bias correction (the smoothing TensorBoard and MLflow's UI
 * use): weight 0 is the raw series, 0.99 is very smooth. NaN and infinite points pass through.
 */
export function smoothEma(ys: ArrayLike<number>, weight: number): number[] {
  const out = new Array<number>(ys.length);
  if (weight <= 0) {
    for (let i = 0; i < ys.length; i++) out[i] = ys[i]!;
    return out;
  }
  let last = 0;
  let count = 0;
  for (let i = 0; i < ys.length; i++) {
    const v = ys[i]!;
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    count++;
    out[i] = last / (1 - Math.pow(weight, count));
  }
  return out;
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isNaN(v) ? 'NaN' : String(v)) : String(v);
  // Spreadsheets run cells that start with = + - @ as formulas; text values get a quote prefix.
  const safe = typeof v === 'string' && /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** RFC 4180 CSV with a header row. */
export function toCsv(header: readonly string[], rows: Iterable<readonly unknown[]>): string {
  const lines = [header.map(csvCell).join(',')];
  for (const r of rows) lines.push(r.map(csvCell).join(','));
  return lines.join('\r\n') + '\r\n';
}

/** A file name made of safe characters. */
export function safeFileName(name: string): string {
  return name.replace(/[^\w.\-]+/g, '_').replace(/^_+|_+$/g, '') || 'chart';
}
