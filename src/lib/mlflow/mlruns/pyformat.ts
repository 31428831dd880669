/**
 * Python's text forms that MLflow's file store writes: float repr for metric values and
 * PyYAML's dump of flat mappings (sorted keys, quoting, folding at 80 columns).
 */

/** Python's repr(float): shortest round-trip digits; exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const sign = neg ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

const PY_FLOAT = /^[+-]?(?:\d(?:_?\d)*\.?(?:\d(?:_?\d)*)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;

/** Python's float(text); undefined when Python would raise ValueError. */
export function parsePyFloat(text: string): number | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'nan' || t === '+nan' || t === '-nan') return Number.NaN;
  if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  if (!PY_FLOAT.test(t)) return undefined;
  return Number(t.replace(/_/g, ''));
}

// ---- PyYAML dump of a flat mapping ----

const BEST_WIDTH = 80;

// PyYAML's implicit resolvers (YAML 1.1): a plain scalar matching one of these is not a string,
// so a string that looks like one must be quoted.
const IMPLICIT: RegExp[] = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:<<)$/,
  /^(?:~|null|Null|NULL|)$/,
  /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/,
  /^(?:=)$/,
  /^(?:!|&|\*)$/,
];

function resolvesToNonString(s: string): boolean {
  return IMPLICIT.some((re) => re.test(s));
}

/** PyYAML's analyze_scalar, reduced to what decides block-context style. */
function analyze(s: string): { plain: boolean; single: boolean } {
  if (s === '') return { plain: false, single: true };
  let indicators = false;
  let special = false;
  let lineBreaks = false;
  if (s.startsWith('---') || s.startsWith('...')) indicators = true;
  const chars = [...s];
  let precededBySpace = true;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    const next = chars[i + 1];
    const followedBySpace = next === undefined || /[\s\0\x85\u2028\u2029]/.test(next);
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(ch)) indicators = true;
      if ((ch === '?' || ch === ':') && followedBySpace) indicators = true;
      if (ch === '-' && followedBySpace) indicators = true;
    } else {
      if (ch === ':' && followedBySpace) indicators = true;
      if (ch === '#' && precededBySpace) indicators = true;
    }
    if (ch === '\n' || ch === '\x85' || ch === '\u2028' || ch === '\u2029') lineBreaks = true;
    const code = ch.codePointAt(0)!;
    const printable =
      ch === '\n' ||
      (code >= 0x20 && code <= 0x7e) ||
      code === 0x85 ||
      (code >= 0xa0 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0xfffd && code !== 0xfeff) ||
      (code >= 0x10000 && code < 0x110000);
    if (!printable || ch === '\t') special = special || !printable;
    precededBySpace = /[\s\0\x85\u2028\u2029]/.test(ch);
  }
  const leadingSpace = /^[ \t]/.test(s);
  const trailingSpace = /[ \t]$/.test(s);
  const plain =
    !indicators && !special && !lineBreaks && !leadingSpace && !trailingSpace && !s.includes('\t');
  return { plain, single: !special && !lineBreaks };
}

/** Writes words, breaking at a single space once the column passes 80 (PyYAML's folding). */
function fold(text: string, startColumn: number, indent: number, quoted: boolean): string {
  let out = '';
  let column = startColumn;
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (text[i] === ' ') {
      let j = i;
      while (j < n && text[j] === ' ') j++;
      const single = j - i === 1;
      const canBreak = single && column > BEST_WIDTH && (!quoted || (i !== 0 && j !== n));
      if (canBreak) {
        out += '\n' + ' '.repeat(indent);
        column = indent;
      } else {
        out += text.slice(i, j);
        column += j - i;
      }
      i = j;
    } else {
      let j = i;
      while (j < n && text[j] !== ' ') j++;
      out += text.slice(i, j);
      column += j - i;
      i = j;
    }
  }
  return out;
}

function doubleQuoted(s: string): string {
  return JSON.stringify(s)
    .replace(/\u2028/g, '\\L')
    .replace(/\u2029/g, '\\P');
}

export type YamlScalar = string | number | boolean | null | readonly never[];

/** One `key: value` line of a top-level block mapping, as PyYAML writes it. */
function scalar(key: string, value: YamlScalar): string {
  const prefix = `${key}: `;
  if (value === null) return `${prefix}null`;
  if (typeof value === 'boolean') return `${prefix}${value ? 'true' : 'false'}`;
  if (typeof value === 'number') {
    return prefix + (Number.isInteger(value) ? String(value) : pyFloatYaml(value));
  }
  if (Array.isArray(value)) return `${prefix}[]`;
  const s = value as string;
  const a = analyze(s);
  const indent = 2;
  if (a.plain && !resolvesToNonString(s)) return prefix + fold(s, prefix.length, indent, false);
  if (a.single) {
    const body = s.replace(/'/g, "''");
    return `${prefix}'${fold(body, prefix.length + 1, indent, true)}'`;
  }
  return prefix + doubleQuoted(s);
}

function pyFloatYaml(x: number): string {
  if (Number.isNaN(x)) return '.nan';
  if (x === Infinity) return '.inf';
  if (x === -Infinity) return '-.inf';
  return pyFloatRepr(x);
}

/** yaml.dump(dict, sort_keys=True, allow_unicode=True) of a flat mapping. */
export function dumpFlatYaml(map: Record<string, YamlScalar>): string {
  const keys = Object.keys(map).sort();
  return keys.map((k) => scalar(k, map[k]!) + '\n').join('');
}

/** A nested one-level mapping (e.g. `tags:` of an input's meta.yaml), else `{}`. */
export function dumpNestedMap(key: string, map: Record<string, string>): string {
  const keys = Object.keys(map).sort();
  if (keys.length === 0) return `${key}: {}\n`;
  return `${key}:\n` + keys.map((k) => '  ' + scalar(quoteKey(k), map[k]!) + '\n').join('');
}

function quoteKey(k: string): string {
  const a = analyze(k);
  if (a.plain && !resolvesToNonString(k)) return k;
  if (a.single) return `'${k.replace(/'/g, "''")}'`;
  return doubleQuoted(k);
}
