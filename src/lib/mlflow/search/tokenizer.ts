/**
 * Tokenizer for MLflow's search filter and order_by strings (mlflow/utils/search_utils.py, which
 * leans on sqlparse). Every token keeps its character offset so errors can point at it.
 */
import { MlflowError } from '../errors.ts';

export type TokenKind =
  | 'word' // bare identifier or keyword, may contain dots: metrics.acc, AND, start_time
  | 'quotedIdent' // `...`
  | 'string' // '...' or "..."
  | 'number'
  | 'op' // = != < <= > >=
  | 'lparen'
  | 'rparen'
  | 'comma'
  | 'dot'
  | 'eof';

export interface Token {
  kind: TokenKind;
  /** Unquoted text (strings and quoted identifiers), or the source text. */
  value: string;
  /** The token exactly as written. */
  raw: string;
  /** 0-based character offset of the token in the input. */
  offset: number;
  /** For strings: which quote was used. */
  quote?: "'" | '"';
}

/** A malformed filter or order_by clause. MLflow answers these with INVALID_PARAMETER_VALUE. */
export class SearchSyntaxError extends MlflowError {
  override name = 'SearchSyntaxError';
  constructor(
    message: string,
    /** 0-based character offset of the offending token. */
    readonly offset: number,
    /** The offending token as written ('' at the end of the input). */
    readonly token: string,
    /** The whole input, for showing a caret under the offending token. */
    readonly input: string,
  ) {
    super('INVALID_PARAMETER_VALUE', message);
  }

  /** Two lines: the input, then a caret under the offending token. */
  pointer(): string {
    return `${this.input}\n${' '.repeat(this.offset)}^${'~'.repeat(Math.max(0, this.token.length - 1))}`;
  }
}

const WORD_START = /[A-Za-z_]/;
const WORD_CHAR = /[\w.]/;
const DIGIT = /[0-9]/;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;

export function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = input.length;
  const push = (kind: TokenKind, value: string, start: number, extra: Partial<Token> = {}) =>
    tokens.push({ kind, value, raw: input.slice(start, i), offset: start, ...extra });

  while (i < n) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      // SQL strings: the quote is escaped by doubling it or with a backslash.
      let value = '';
      i++;
      let closed = false;
      while (i < n) {
        const ch = input[i]!;
        if (ch === '\\' && i + 1 < n) {
          value += input[i + 1];
          i += 2;
          continue;
        }
        if (ch === c) {
          if (input[i + 1] === c) {
            value += c;
            i += 2;
            continue;
          }
          i++;
          closed = true;
          break;
        }
        value += ch;
        i++;
      }
      if (!closed) {
        throw new SearchSyntaxError(
          `Unterminated string starting at character ${start}: ${input.slice(start)}`,
          start,
          input.slice(start),
          input,
        );
      }
      push('string', value, start, { quote: c });
      continue;
    }
    if (c === '`') {
      const end = input.indexOf('`', i + 1);
      if (end < 0) {
        throw new SearchSyntaxError(
          `Unterminated backtick-quoted name starting at character ${start}: ${input.slice(start)}`,
          start,
          input.slice(start),
          input,
        );
      }
      i = end + 1;
      push('quotedIdent', input.slice(start + 1, end), start);
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      i++;
      push(c === '(' ? 'lparen' : c === ')' ? 'rparen' : 'comma', c, start);
      continue;
    }
    if (c === '!' || c === '<' || c === '>' || c === '=') {
      const two = input.slice(i, i + 2);
      if (two === '!=' || two === '<=' || two === '>=' || two === '==' || two === '<>') {
        i += 2;
      } else if (c === '!') {
        i++;
        throw new SearchSyntaxError(
          `Invalid character '!' at character ${start}`,
          start,
          '!',
          input,
        );
      } else {
        i++;
      }
      push('op', input.slice(start, i), start);
      continue;
    }
    const prev = tokens[tokens.length - 1];
    const signAllowed =
      !prev || prev.kind === 'op' || prev.kind === 'lparen' || prev.kind === 'comma';
    if (
      DIGIT.test(c) ||
      (c === '.' && DIGIT.test(input[i + 1] ?? '')) ||
      ((c === '-' || c === '+') && signAllowed)
    ) {
      const m = NUMBER.exec(input.slice(i));
      if (m) {
        i += m[0].length;
        // "1abc" is not a number followed by a word: report the whole run of characters.
        if (i < n && WORD_START.test(input[i]!)) {
          while (i < n && WORD_CHAR.test(input[i]!)) i++;
          throw new SearchSyntaxError(
            `Invalid token '${input.slice(start, i)}' at character ${start}`,
            start,
            input.slice(start, i),
            input,
          );
        }
        push('number', m[0], start);
        continue;
      }
    }
    if (WORD_START.test(c)) {
      while (i < n && WORD_CHAR.test(input[i]!)) i++;
      push('word', input.slice(start, i), start);
      continue;
    }
    if (c === '.') {
      i++;
      push('dot', '.', start);
      continue;
    }
    throw new SearchSyntaxError(`Invalid character '${c}' at character ${start}`, start, c, input);
  }
  tokens.push({ kind: 'eof', value: '', raw: '', offset: n });
  return tokens;
}
