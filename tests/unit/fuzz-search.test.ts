// Property-based tests of the run search grammar: any filter or order_by text either parses or
// fails with SearchSyntaxError (MLflow's INVALID_PARAMETER_VALUE); generated filters printed as
// text parse back to the same comparisons.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  SearchSyntaxError,
  parseFilter,
  parseOrderBy,
  type Comparator,
  type Comparison,
} from '../../src/lib/mlflow/search/index.ts';

function onlySyntaxErrors(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (e instanceof SearchSyntaxError) {
      // The error points inside the input it was given.
      expect(e.offset).toBeGreaterThanOrEqual(0);
      expect(e.offset).toBeLessThanOrEqual(e.input.length);
      return;
    }
    throw new Error(`undocumented ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

const token = fc.constantFrom(
  'metrics.',
  'params.',
  'tags.',
  'attributes.',
  'datasets.',
  'run_name',
  'start_time',
  'status',
  '`',
  '"',
  "'",
  'acc',
  ' ',
  '=',
  '!=',
  '<',
  '<=',
  '>',
  '>=',
  'LIKE',
  'ILIKE',
  'IN',
  'NOT',
  'IS',
  'NULL',
  'AND',
  'OR',
  '(',
  ')',
  ',',
  '0.5',
  '-1e9',
  '1e999',
  'NaN',
  "'%x_'",
  'ASC',
  'DESC',
  '\\',
  '\n',
  '\u0000',
);

describe('search grammar under arbitrary input', () => {
  it('filter: only SearchSyntaxError for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), (s) => onlySyntaxErrors(() => parseFilter(s))),
      { numRuns: 1000 },
    );
  });

  it('filter: only SearchSyntaxError for token soup', () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 24 }), (parts) =>
        onlySyntaxErrors(() => parseFilter(parts.join(''))),
      ),
      { numRuns: 2000 },
    );
  });

  it('order_by: only SearchSyntaxError for arbitrary and token-soup strings', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.array(token, { maxLength: 8 }).map((p) => p.join('')),
        ),
        (s) => onlySyntaxErrors(() => parseOrderBy(s)),
      ),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------- round trip

type Gen = {
  text: string;
  expected: Omit<Comparison, 'offset' | 'identifier'> & { type: string; key: string };
};

const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.]{0,10}$/);
const quotedKey = fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !s.includes('`'));
const strValue = fc.string({ maxLength: 12 }).filter((s) => !s.includes("'") && !s.includes('\\'));
const quote = (s: string) => `'${s}'`;

const metricCmp: fc.Arbitrary<Gen> = fc
  .tuple(
    fc.oneof(key, quotedKey),
    fc.constantFrom<Comparator>('=', '!=', '<', '<=', '>', '>='),
    // -0 prints as "0": the text cannot carry the sign of zero.
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }).map((v) => v || 0),
  )
  .map(([k, op, v]) => ({
    text: `metrics.\`${k}\` ${op} ${String(v)}`,
    expected: { type: 'metric', key: k, comparator: op, value: v },
  }));

const stringCmp: fc.Arbitrary<Gen> = fc
  .tuple(
    fc.constantFrom('params', 'tags'),
    quotedKey,
    fc.constantFrom<Comparator>('=', '!=', 'LIKE', 'ILIKE'),
    strValue,
  )
  .map(([entity, k, op, v]) => ({
    text: `${entity}.\`${k}\` ${op} ${quote(v)}`,
    expected: { type: entity === 'params' ? 'param' : 'tag', key: k, comparator: op, value: v },
  }));

const attrCmp: fc.Arbitrary<Gen> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('run_name', 'user_id', 'status', 'artifact_uri'),
      fc.constantFrom<Comparator>('=', '!=', 'LIKE'),
      strValue,
    )
    .map(([k, op, v]) => ({
      text: `attributes.${k} ${op} ${quote(v)}`,
      expected: { type: 'attribute', key: k, comparator: op, value: v },
    })),
  fc
    .tuple(
      fc.constantFrom('start_time', 'end_time'),
      fc.constantFrom<Comparator>('=', '<', '>='),
      fc.integer({ min: 0, max: 2 ** 42 }),
    )
    .map(([k, op, v]) => ({
      text: `attributes.${k} ${op} ${v}`,
      expected: { type: 'attribute', key: k, comparator: op, value: v },
    })),
  fc
    .tuple(
      fc.constantFrom<Comparator>('IN', 'NOT IN'),
      fc.array(fc.stringMatching(/^[0-9a-f]{32}$/), { minLength: 1, maxLength: 3 }),
    )
    .map(([op, ids]) => ({
      text: `attributes.run_id ${op} (${ids.map(quote).join(', ')})`,
      expected: { type: 'attribute', key: 'run_id', comparator: op, value: ids },
    })),
);

describe('search grammar round trip', () => {
  it('generated filters print to text that parses back to the same comparisons', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(metricCmp, stringCmp, attrCmp), { minLength: 1, maxLength: 5 }),
        (gens) => {
          const text = gens.map((g) => g.text).join(' AND ');
          const parsed = parseFilter(text);
          expect(
            parsed.map((c) => ({
              type: c.identifier.type,
              key: c.identifier.key,
              comparator: c.comparator,
              value: c.value,
            })),
          ).toEqual(gens.map((g) => g.expected));
          // Offsets point at each comparison's identifier in the text.
          for (const c of parsed)
            expect(text.slice(c.identifier.offset)).toMatch(/^(metrics|params|tags|attributes)\./);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('order_by clauses round-trip', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('metrics', 'params', 'tags'),
        quotedKey,
        fc.option(fc.boolean(), { nil: undefined }),
        (entity, k, asc) => {
          const text = `${entity}.\`${k}\`${asc === undefined ? '' : asc ? ' ASC' : ' DESC'}`;
          const o = parseOrderBy(text);
          expect(o.identifier.key).toBe(k);
          expect(o.ascending).toBe(asc ?? true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
