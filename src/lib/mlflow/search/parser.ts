/**
 * Parser for MLflow's run search grammar: `filter` (comparisons joined by AND) and `order_by`
 * clauses. Mirrors mlflow/utils/search_utils.py: same entities and aliases, same comparators per
 * entity, same value types, messages in MLflow's words plus the offending token's position.
 */
import { SearchSyntaxError, tokenize, type Token } from './tokenizer.ts';

export type EntityType = 'metric' | 'param' | 'tag' | 'attribute' | 'dataset';

export type Comparator =
  | '='
  | '!='
  | '<'
  | '<='
  | '>'
  | '>='
  | 'LIKE'
  | 'ILIKE'
  | 'IN'
  | 'NOT IN'
  | 'IS NULL'
  | 'IS NOT NULL';

export interface Identifier {
  type: EntityType;
  /** Metric/param/tag key, or the canonical attribute/dataset key (aliases resolved). */
  key: string;
  offset: number;
}

export interface Comparison {
  identifier: Identifier;
  comparator: Comparator;
  /** number for metrics and numeric attributes, string, string[] for IN lists, null for IS NULL. */
  value: number | string | string[] | null;
  offset: number;
}

export interface OrderByClause {
  identifier: Identifier;
  ascending: boolean;
}

const ENTITY_ALIASES: Record<string, EntityType> = {
  metric: 'metric',
  metrics: 'metric',
  parameter: 'param',
  parameters: 'param',
  param: 'param',
  params: 'param',
  tag: 'tag',
  tags: 'tag',
  attribute: 'attribute',
  attributes: 'attribute',
  attr: 'attribute',
  run: 'attribute',
  dataset: 'dataset',
  datasets: 'dataset',
};

export const STRING_ATTRIBUTES = [
  'run_id',
  'run_name',
  'status',
  'user_id',
  'artifact_uri',
] as const;
export const NUMERIC_ATTRIBUTES = ['start_time', 'end_time'] as const;
const ATTRIBUTE_ALIASES: Record<string, string> = {
  created: 'start_time',
  Created: 'start_time',
  'run name': 'run_name',
  'Run name': 'run_name',
  'Run Name': 'run_name',
};
const VALID_ATTRIBUTE_KEYS = [
  ...STRING_ATTRIBUTES,
  ...NUMERIC_ATTRIBUTES,
  ...Object.keys(ATTRIBUTE_ALIASES),
];
const DATASET_KEYS = ['name', 'digest', 'context'];

const NUMERIC_OPS: Comparator[] = ['>', '>=', '!=', '=', '<', '<='];
const STRING_OPS: Comparator[] = ['!=', '=', 'LIKE', 'ILIKE'];
const LIST_OPS: Comparator[] = ['IN', 'NOT IN'];
const NULL_OPS: Comparator[] = ['IS NULL', 'IS NOT NULL'];

export function isNumericAttribute(key: string): boolean {
  return (NUMERIC_ATTRIBUTES as readonly string[]).includes(key);
}

function pyList(items: readonly string[]): string {
  return `[${items.map((s) => `'${s}'`).join(', ')}]`;
}

class Parser {
  private pos = 0;
  private readonly tokens: Token[];
  constructor(
    readonly input: string,
    private readonly what: 'filter' | 'order_by',
  ) {
    this.tokens = tokenize(input);
  }

  peek(k = 0): Token {
    return this.tokens[Math.min(this.pos + k, this.tokens.length - 1)]!;
  }
  next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.pos++;
    return t;
  }
  error(message: string, t: Token): SearchSyntaxError {
    return new SearchSyntaxError(message, t.offset, t.raw, this.input);
  }
  describe(t: Token): string {
    return t.kind === 'eof' ? 'end of input' : `'${t.raw}' at character ${t.offset}`;
  }
  isWord(t: Token, ...words: string[]): boolean {
    return t.kind === 'word' && words.includes(t.value.toUpperCase());
  }

  identifier(): Identifier {
    const t = this.next();
    let entityRaw: string | null = null;
    let key: string;
    if (t.kind === 'word') {
      if (this.isWord(t, 'AND', 'OR', 'NOT', 'IN', 'LIKE', 'ILIKE', 'IS', 'NULL')) {
        throw this.error(
          `Expected an identifier such as 'metrics.acc', found ${this.describe(t)}`,
          t,
        );
      }
      const dot = t.value.indexOf('.');
      if (dot < 0) {
        key = t.value;
      } else {
        entityRaw = t.value.slice(0, dot);
        key = t.value.slice(dot + 1);
        if (key === '') {
          const k = this.peek();
          const adjacent = k.offset === t.offset + t.raw.length;
          if (adjacent && (k.kind === 'quotedIdent' || (k.kind === 'string' && k.quote === '"'))) {
            this.next();
            key = k.value;
          } else {
            throw this.error(
              `Invalid identifier '${t.raw}': a key is expected after '${entityRaw}.' (use backticks for keys with spaces or dashes: ${entityRaw}.\`my key\`)`,
              t,
            );
          }
        }
      }
    } else if (t.kind === 'quotedIdent') {
      const d = this.peek();
      if (d.kind === 'dot' && d.offset === t.offset + t.raw.length) {
        this.next();
        entityRaw = t.value;
        const k = this.next();
        if (
          k.kind === 'word' ||
          k.kind === 'quotedIdent' ||
          (k.kind === 'string' && k.quote === '"')
        ) {
          key = k.value;
        } else {
          throw this.error(
            `Invalid identifier: a key is expected after '${t.raw}.', found ${this.describe(k)}`,
            k,
          );
        }
      } else {
        key = t.value;
      }
    } else {
      throw this.error(
        `Invalid ${this.what === 'filter' ? 'filter' : 'order_by clause'}: expected an identifier such as 'metrics.acc' or 'params.lr', found ${this.describe(t)}`,
        t,
      );
    }
    let type: EntityType = 'attribute';
    if (entityRaw !== null) {
      const found = ENTITY_ALIASES[entityRaw.toLowerCase()];
      if (!found) {
        throw this.error(
          `Invalid entity type '${entityRaw}'. Valid values are ${pyList(['metric', 'parameter', 'tag', 'attribute', 'dataset'])}`,
          t,
        );
      }
      type = found;
    }
    if (key === '') throw this.error(`Invalid identifier '${t.raw}': the key is empty`, t);
    if (type === 'attribute') {
      if (!VALID_ATTRIBUTE_KEYS.includes(key)) {
        throw this.error(
          `Invalid attribute key '${key}' specified. Valid keys are '${pyList(VALID_ATTRIBUTE_KEYS)}'`,
          t,
        );
      }
      key = ATTRIBUTE_ALIASES[key] ?? key;
    } else if (type === 'dataset' && !DATASET_KEYS.includes(key)) {
      throw this.error(
        `Invalid dataset key '${key}' specified. Valid keys are '${pyList(DATASET_KEYS)}'`,
        t,
      );
    }
    return { type, key, offset: t.offset };
  }

  comparator(): { op: Comparator; token: Token } {
    const t = this.next();
    if (t.kind === 'op') {
      if (t.value === '==' || t.value === '<>') {
        throw this.error(
          `Invalid comparator '${t.value}' at character ${t.offset}: use '=' or '!='`,
          t,
        );
      }
      return { op: t.value as Comparator, token: t };
    }
    if (t.kind === 'word') {
      const w = t.value.toUpperCase();
      if (w === 'LIKE' || w === 'ILIKE' || w === 'IN') return { op: w, token: t };
      if (w === 'NOT') {
        const n = this.next();
        if (this.isWord(n, 'IN')) return { op: 'NOT IN', token: t };
        throw this.error(`Expected 'IN' after 'NOT', found ${this.describe(n)}`, n);
      }
      if (w === 'IS') {
        let n = this.next();
        let negated = false;
        if (this.isWord(n, 'NOT')) {
          negated = true;
          n = this.next();
        }
        if (this.isWord(n, 'NULL')) return { op: negated ? 'IS NOT NULL' : 'IS NULL', token: t };
        throw this.error(
          `Expected 'NULL' after 'IS${negated ? ' NOT' : ''}', found ${this.describe(n)}`,
          n,
        );
      }
    }
    throw this.error(
      `Expected a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN) but found ${this.describe(t)}`,
      t,
    );
  }

  comparison(): Comparison {
    const identifier = this.identifier();
    const { op, token: opToken } = this.comparator();
    const { type, key } = identifier;
    const numeric = type === 'metric' || (type === 'attribute' && isNumericAttribute(key));
    let allowed: Comparator[];
    if (numeric) allowed = NUMERIC_OPS;
    else if (type === 'dataset') allowed = [...STRING_OPS, ...LIST_OPS];
    else if (type === 'attribute' && key === 'run_id') allowed = [...STRING_OPS, ...LIST_OPS];
    else allowed = STRING_OPS;
    if (type === 'metric' || type === 'param' || type === 'tag')
      allowed = [...allowed, ...NULL_OPS];
    if (!allowed.includes(op)) {
      if ((op === 'IN' || op === 'NOT IN') && type === 'attribute') {
        throw this.error(
          `Only the 'run_id' attribute supports comparison with a list of quoted string values.`,
          opToken,
        );
      }
      throw this.error(
        `Invalid comparator '${op}' not one of '${pyList(allowed.filter((a) => !NULL_OPS.includes(a)))}'`,
        opToken,
      );
    }
    let value: Comparison['value'];
    if (op === 'IS NULL' || op === 'IS NOT NULL') {
      value = null;
    } else if (op === 'IN' || op === 'NOT IN') {
      value = this.stringList();
    } else if (numeric) {
      const v = this.next();
      if (v.kind !== 'number') {
        throw this.error(
          `Expected numeric value type for ${type === 'metric' ? 'metric' : 'attribute'}. Found ${v.kind === 'eof' ? 'nothing' : `'${v.raw}'`}`,
          v,
        );
      }
      value = Number(v.value);
    } else {
      const v = this.next();
      if (v.kind !== 'string') {
        const label = type === 'param' ? 'Parameter value' : type === 'tag' ? 'Tag value' : 'Value';
        throw this.error(
          `${label} is either not quoted or unidentified quote types used for string value ${v.kind === 'eof' ? '(none)' : `'${v.raw}'`}. Use either single or double quotes.`,
          v,
        );
      }
      value = v.value;
    }
    return { identifier, comparator: op, value, offset: identifier.offset };
  }

  stringList(): string[] {
    const open = this.next();
    if (open.kind !== 'lparen') {
      throw this.error(
        `Expected a parenthesized list of quoted strings such as ('a', 'b'), found ${this.describe(open)}`,
        open,
      );
    }
    const out: string[] = [];
    for (;;) {
      const v = this.next();
      if (v.kind !== 'string') {
        throw this.error(
          `While parsing a list in the query, expected a quoted string value, found ${this.describe(v)}`,
          v,
        );
      }
      out.push(v.value);
      const sep = this.next();
      if (sep.kind === 'rparen') break;
      if (sep.kind !== 'comma')
        throw this.error(`Expected ',' or ')' in the list, found ${this.describe(sep)}`, sep);
    }
    return out;
  }

  filter(): Comparison[] {
    const out: Comparison[] = [];
    if (this.peek().kind === 'eof') return out;
    for (;;) {
      out.push(this.comparison());
      const t = this.next();
      if (t.kind === 'eof') break;
      if (this.isWord(t, 'AND')) {
        if (this.peek().kind === 'eof')
          throw this.error(`Expected a comparison after 'AND', found end of input`, this.peek());
        continue;
      }
      if (this.isWord(t, 'OR')) {
        throw this.error(
          `Invalid clause(s) in filter string: 'OR' at character ${t.offset}. Only AND is supported.`,
          t,
        );
      }
      throw this.error(
        `Invalid filter '${this.input}': expected 'AND' or the end of the filter, found ${this.describe(t)}`,
        t,
      );
    }
    return out;
  }

  orderBy(): OrderByClause {
    const identifier = this.identifier();
    if (identifier.type === 'dataset') {
      throw new SearchSyntaxError(
        `Invalid order_by entity type 'dataset' in '${this.input}'. Runs can be ordered by metrics, params, tags and attributes.`,
        identifier.offset,
        this.input.slice(identifier.offset),
        this.input,
      );
    }
    let ascending = true;
    const t = this.next();
    if (this.isWord(t, 'ASC', 'DESC')) {
      ascending = t.value.toUpperCase() === 'ASC';
      const e = this.next();
      if (e.kind !== 'eof')
        throw this.error(
          `Invalid order_by clause '${this.input}'. Could not be parsed: unexpected ${this.describe(e)}`,
          e,
        );
    } else if (t.kind !== 'eof') {
      throw this.error(
        `Invalid order_by clause '${this.input}'. Could not be parsed: expected ASC, DESC or the end of the clause, found ${this.describe(t)}`,
        t,
      );
    }
    return { identifier, ascending };
  }
}

/** Parses a search filter. An empty or blank filter matches everything. */
export function parseFilter(filter: string | null | undefined): Comparison[] {
  if (!filter || filter.trim() === '') return [];
  return new Parser(filter, 'filter').filter();
}

/** Parses one order_by entry such as `metrics.acc DESC`. */
export function parseOrderBy(clause: string): OrderByClause {
  if (clause.trim() === '') {
    throw new SearchSyntaxError(
      `Invalid order_by clause '${clause}'. Could not be parsed.`,
      0,
      clause,
      clause,
    );
  }
  return new Parser(clause, 'order_by').orderBy();
}

export function parseOrderByList(clauses: readonly string[] | undefined): OrderByClause[] {
  return (clauses ?? []).map(parseOrderBy);
}
