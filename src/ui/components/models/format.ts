/** Small display helpers shared by the model pages. */

/** A timestamp (ms since the epoch) in the reader's locale. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms <= 0) return '—';
  return new Date(ms).toLocaleString();
}

/** Values of unknown shape (from a file) as compact, readable text. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** A safe default file name from a model name: letters, digits, dot, dash, underscore. */
export function safeFileName(name: string): string {
  const s = name.replace(/[^\w.-]+/g, '_').replace(/^[._]+/, '');
  return s.length > 0 ? s.slice(0, 120) : 'model';
}
