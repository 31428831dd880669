import { PyFloat, pyFloatRepr } from './pyjson.ts';

/**
 * A YAML writer that produces what PyYAML's `safe_dump` produces (block style, indentless
 * sequences inside mappings, 2-space indent, 80-column folding of long scalars, the same choice
 * between plain, single- and double-quoted scalars). MLflow writes MLmodel and meta.yaml files
 * with PyYAML; matching it keeps files that real MLflow wrote byte-identical when the app writes
 * them back. Reading is done by the `yaml` package.
 *
 * Values: null, boolean, number (whole numbers written as ints), PyFloat (always a float),
 * string, arrays and plain objects.
 */
export interface PyYamlOptions {
  /** PyYAML's sort_keys (default true). */
  sortKeys?: boolean;
  /** PyYAML's allow_unicode (default false: non-ASCII is escaped in double quotes). */
  allowUnicode?: boolean;
}

const BEST_WIDTH = 80;
const BEST_INDENT = 2;
const BREAKS = '\n\x85\u2028\u2029';
const WHITESPACE_AFTER = '\0 \t\r\n\x85\u2028\u2029';

// PyYAML's implicit resolvers (YAML 1.1): a plain string that matches one of these would be read
// back as another type, so it must be quoted.
const IMPLICIT_NON_STRING: RegExp[] = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:<<)$/,
  /^(?:~|null|Null|NULL)$/,
  /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/,
  /^(?:=)$/,
];

const ESCAPES: Record<string, string> = {
  '\0': '0',
  '\x07': 'a',
  '\x08': 'b',
  '\x09': 't',
  '\x0A': 'n',
  '\x0B': 'v',
  '\x0C': 'f',
  '\x0D': 'r',
  '\x1B': 'e',
  '"': '"',
  '\\': '\\',
  '\x85': 'N',
  '\xA0': '_',
  '\u2028': 'L',
  '\u2029': 'P',
};

interface Analysis {
  empty: boolean;
  multiline: boolean;
  allowBlockPlain: boolean;
  allowSingle: boolean;
}

function isUnicodePrintable(cp: number): boolean {
  return (
    cp === 0x85 ||
    (cp >= 0xa0 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp < 0x10ffff)
  );
}

function analyze(chars: string[], allowUnicode: boolean): Analysis {
  const n = chars.length;
  if (n === 0) return { empty: true, multiline: false, allowBlockPlain: true, allowSingle: true };
  let blockIndicators = false;
  let lineBreaks = false;
  let special = false;
  let leadingSpace = false;
  let leadingBreak = false;
  let trailingSpace = false;
  let trailingBreak = false;
  let breakSpace = false;
  let spaceBreak = false;
  const text = chars.join('');
  if (text.startsWith('---') || text.startsWith('...')) blockIndicators = true;
  let precededByWs = true;
  let followedByWs = n === 1 || WHITESPACE_AFTER.includes(chars[1]!);
  let prevSpace = false;
  let prevBreak = false;
  for (let i = 0; i < n; i++) {
    const ch = chars[i]!;
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(ch)) blockIndicators = true;
      if ('?:'.includes(ch) && followedByWs) blockIndicators = true;
      if (ch === '-' && followedByWs) blockIndicators = true;
    } else {
      if (ch === ':' && followedByWs) blockIndicators = true;
      if (ch === '#' && precededByWs) blockIndicators = true;
    }
    if (BREAKS.includes(ch)) lineBreaks = true;
    const cp = ch.codePointAt(0)!;
    if (!(ch === '\n' || (cp >= 0x20 && cp <= 0x7e))) {
      if (isUnicodePrintable(cp) && cp !== 0xfeff) {
        if (!allowUnicode) special = true;
      } else special = true;
    }
    if (ch === ' ') {
      if (i === 0) leadingSpace = true;
      if (i === n - 1) trailingSpace = true;
      if (prevBreak) breakSpace = true;
      prevSpace = true;
      prevBreak = false;
    } else if (BREAKS.includes(ch)) {
      if (i === 0) leadingBreak = true;
      if (i === n - 1) trailingBreak = true;
      if (prevSpace) spaceBreak = true;
      prevSpace = false;
      prevBreak = true;
    } else {
      prevSpace = false;
      prevBreak = false;
    }
    precededByWs = WHITESPACE_AFTER.includes(ch);
    followedByWs = i + 2 >= n || WHITESPACE_AFTER.includes(chars[i + 2]!);
  }
  let allowBlockPlain = true;
  let allowSingle = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) allowBlockPlain = false;
  if (breakSpace) allowBlockPlain = allowSingle = false;
  if (spaceBreak || special) allowBlockPlain = allowSingle = false;
  if (lineBreaks) allowBlockPlain = false;
  if (blockIndicators) allowBlockPlain = false;
  return { empty: false, multiline: lineBreaks, allowBlockPlain, allowSingle };
}

function resolvesToString(s: string): boolean {
  if (s === '') return false;
  return !IMPLICIT_NON_STRING.some((re) => re.test(s));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PyFloat);
}

class Emitter {
  out: string[] = [];
  column = 0;
  whitespace = true;
  indention = true;
  indent = 0;

  constructor(private readonly opts: Required<PyYamlOptions>) {}

  write(s: string): void {
    this.out.push(s);
  }

  lineBreak(): void {
    this.whitespace = true;
    this.indention = true;
    this.column = 0;
    this.write('\n');
  }

  writeIndent(): void {
    const indent = this.indent;
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) {
      this.lineBreak();
    }
    if (this.column < indent) {
      this.whitespace = true;
      this.write(' '.repeat(indent - this.column));
      this.column = indent;
    }
  }

  indicator(ind: string, needWhitespace: boolean, whitespace = false, indention = false): void {
    const data = this.whitespace || !needWhitespace ? ind : ' ' + ind;
    this.whitespace = whitespace;
    this.indention = this.indention && indention;
    this.column += data.length;
    this.write(data);
  }

  node(v: unknown, ctx: { mapping: boolean; simpleKey: boolean }): void {
    if (Array.isArray(v)) {
      if (v.length === 0) {
        this.indicator('[', true, true);
        this.indicator(']', false);
        return;
      }
      const saved = this.indent;
      // Sequences directly inside a mapping are indentless.
      const indentless = ctx.mapping && !this.indention;
      if (!indentless) this.indent = saved + (this.out.length === 0 ? 0 : BEST_INDENT);
      for (const item of v) {
        this.writeIndent();
        this.indicator('-', true, false, true);
        this.node(item, { mapping: false, simpleKey: false });
      }
      this.indent = saved;
      return;
    }
    if (isPlainObject(v)) {
      let entries = Object.entries(v).filter(([, x]) => x !== undefined);
      if (entries.length === 0) {
        this.indicator('{', true, true);
        this.indicator('}', false);
        return;
      }
      if (this.opts.sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const saved = this.indent;
      this.indent = saved + (this.out.length === 0 ? 0 : BEST_INDENT);
      for (const [k, x] of entries) {
        this.writeIndent();
        this.scalar(k, { mapping: true, simpleKey: true });
        this.indicator(':', false);
        this.node(x, { mapping: true, simpleKey: false });
      }
      this.indent = saved;
      return;
    }
    this.scalar(v, ctx);
  }

  scalar(v: unknown, ctx: { mapping: boolean; simpleKey: boolean }): void {
    const saved = this.indent;
    this.indent = saved + BEST_INDENT;
    if (typeof v === 'string') this.string(v, ctx.simpleKey);
    else this.plain(Array.from(scalarText(v)), !ctx.simpleKey);
    this.indent = saved;
  }

  string(s: string, simpleKey: boolean): void {
    const chars = Array.from(s);
    const a = analyze(chars, this.opts.allowUnicode);
    const split = !simpleKey;
    if (resolvesToString(s) && !(simpleKey && (a.empty || a.multiline)) && a.allowBlockPlain) {
      this.plain(chars, split);
    } else if (a.allowSingle && !(simpleKey && a.multiline)) {
      this.singleQuoted(chars, split);
    } else {
      this.doubleQuoted(chars, split);
    }
  }

  plain(text: string[], split: boolean): void {
    if (text.length === 0) return;
    if (!this.whitespace) {
      this.write(' ');
      this.column += 1;
    }
    this.whitespace = false;
    this.indention = false;
    let spaces = false;
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end] : undefined;
      if (spaces) {
        if (ch !== ' ') {
          if (start + 1 === end && this.column > BEST_WIDTH && split) {
            this.writeIndent();
            this.whitespace = false;
            this.indention = false;
          } else {
            const data = text.slice(start, end).join('');
            this.column += end - start;
            this.write(data);
          }
          start = end;
        }
      } else if (ch === undefined || ch === ' ') {
        const data = text.slice(start, end).join('');
        this.column += end - start;
        this.write(data);
        start = end;
      }
      if (ch !== undefined) spaces = ch === ' ';
    }
  }

  singleQuoted(text: string[], split: boolean): void {
    this.indicator("'", true);
    let spaces = false;
    let breaks = false;
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end] : undefined;
      if (spaces) {
        if (ch === undefined || ch !== ' ') {
          if (
            start + 1 === end &&
            this.column > BEST_WIDTH &&
            split &&
            start !== 0 &&
            end !== text.length
          ) {
            this.writeIndent();
          } else {
            this.column += end - start;
            this.write(text.slice(start, end).join(''));
          }
          start = end;
        }
      } else if (breaks) {
        if (ch === undefined || !BREAKS.includes(ch)) {
          if (text[start] === '\n') this.lineBreak();
          for (const br of text.slice(start, end)) {
            if (br === '\n') this.lineBreak();
            else {
              this.write(br);
              this.whitespace = true;
              this.indention = true;
              this.column = 0;
            }
          }
          this.writeIndent();
          start = end;
        }
      } else if (ch === undefined || ' '.includes(ch) || BREAKS.includes(ch) || ch === "'") {
        if (start < end) {
          this.column += end - start;
          this.write(text.slice(start, end).join(''));
          start = end;
        }
      }
      if (ch === "'") {
        this.column += 2;
        this.write("''");
        start = end + 1;
      }
      if (ch !== undefined) {
        spaces = ch === ' ';
        breaks = BREAKS.includes(ch);
      }
    }
    this.indicator("'", false);
  }

  doubleQuoted(text: string[], split: boolean): void {
    this.indicator('"', true);
    let start = 0;
    for (let end = 0; end <= text.length; end++) {
      const ch = end < text.length ? text[end] : undefined;
      const cp = ch === undefined ? -1 : ch.codePointAt(0)!;
      if (
        ch === undefined ||
        '"\\\x85\u2028\u2029\uFEFF'.includes(ch) ||
        !(
          (cp >= 0x20 && cp <= 0x7e) ||
          (this.opts.allowUnicode &&
            ((cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd)))
        )
      ) {
        if (start < end) {
          this.column += end - start;
          this.write(text.slice(start, end).join(''));
          start = end;
        }
        if (ch !== undefined) {
          let data: string;
          const esc = ESCAPES[ch];
          if (esc !== undefined) data = '\\' + esc;
          else if (cp <= 0xff) data = '\\x' + cp.toString(16).toUpperCase().padStart(2, '0');
          else if (cp <= 0xffff) data = '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
          else data = '\\U' + cp.toString(16).toUpperCase().padStart(8, '0');
          this.column += data.length;
          this.write(data);
          start = end + 1;
        }
      }
      if (
        end > 0 &&
        end < text.length - 1 &&
        (ch === ' ' || start >= end) &&
        this.column + (end - start) > BEST_WIDTH &&
        split
      ) {
        const data = text.slice(start, end).join('') + '\\';
        if (start < end) start = end;
        this.column += data.length;
        this.write(data);
        this.writeIndent();
        this.whitespace = false;
        this.indention = false;
        if (text[start] === ' ') {
          this.column += 1;
          this.write('\\');
        }
      }
    }
    this.indicator('"', false);
  }
}

function scalarText(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  const isFloat = v instanceof PyFloat || (typeof v === 'number' && !Number.isInteger(v));
  const n = v instanceof PyFloat ? v.value : (v as number);
  if (typeof n !== 'number') throw new TypeError(`Cannot write ${String(v)} as YAML`);
  if (!isFloat) return String(n);
  if (Number.isNaN(n)) return '.nan';
  if (n === Infinity) return '.inf';
  if (n === -Infinity) return '-.inf';
  let r = pyFloatRepr(n);
  if (!r.includes('.') && r.includes('e')) r = r.replace('e', '.0e');
  return r;
}

/** Writes a value as PyYAML's safe_dump would (default: sort_keys=True, allow_unicode=False). */
export function dumpPyYaml(value: unknown, opts: PyYamlOptions = {}): string {
  const e = new Emitter({
    sortKeys: opts.sortKeys ?? true,
    allowUnicode: opts.allowUnicode ?? false,
  });
  e.node(value, { mapping: false, simpleKey: false });
  // Document end: finish the last line.
  if (e.column > 0) e.lineBreak();
  return e.out.join('');
}
