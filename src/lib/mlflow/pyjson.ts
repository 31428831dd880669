/**
 * Python's number and JSON text forms, so that what the app writes matches what Python MLflow
 * writes byte for byte (signature strings, input examples, tag JSON).
 */

/** A number that Python would hold as a float even when it has no fraction (`1.0`). */
export class PyFloat {
  constructor(readonly value: number) {}
  valueOf(): number {
    return this.value;
  }
}

/**
 * Python's `repr(float)`: shortest round-trip digits (as JavaScript), but exponent form below
 * 1e-4 and from 1e16 up, with a two-digit minimum exponent, and `.0` on whole numbers.
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant = '0', expText = '0'] = Math.abs(x).toExponential().split('e');
  const exp = Number(expText);
  const digits = mant.replace('.', '');
  if (exp >= -4 && exp < 16) {
    if (exp >= digits.length - 1) return `${sign}${digits}${'0'.repeat(exp - digits.length + 1)}.0`;
    if (exp >= 0) return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
    return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp).toString().padStart(2, '0');
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
}

function jsonNumber(x: number, asFloat: boolean): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (!asFloat && Number.isInteger(x)) return String(x);
  return pyFloatRepr(x);
}

/** JSON string literal as Python's json.dumps writes it with ensure_ascii=True. */
export function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += s[i];
  }
  return out + '"';
}

export interface PyJsonOptions {
  /** `json.dumps(..., indent=n)`: item separator becomes ',' plus a newline. */
  indent?: number;
}

/**
 * Python's `json.dumps` with default separators (`", "`, `": "`), insertion order kept.
 * Whole numbers are written as ints unless wrapped in PyFloat.
 */
export function pyJsonDumps(value: unknown, opts: PyJsonOptions = {}): string {
  const indent = opts.indent;
  const write = (v: unknown, level: number): string => {
    if (v === null || v === undefined) return 'null';
    if (v instanceof PyFloat) return jsonNumber(v.value, true);
    if (typeof v === 'number') return jsonNumber(v, false);
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'string') return pyJsonString(v);
    if (v instanceof Date) return pyJsonString(v.toISOString());
    const items: string[] = [];
    const isArray = Array.isArray(v);
    if (isArray) for (const x of v) items.push(write(x, level + 1));
    else
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x === undefined) continue;
        items.push(`${pyJsonString(k)}: ${write(x, level + 1)}`);
      }
    const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
    if (items.length === 0) return open + close;
    if (indent === undefined) return open + items.join(', ') + close;
    const pad = '\n' + ' '.repeat(indent * (level + 1));
    return open + pad + items.join(',' + pad) + '\n' + ' '.repeat(indent * level) + close;
  };
  return write(value, 0);
}
