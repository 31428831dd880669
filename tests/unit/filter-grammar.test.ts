import { describe, expect, it } from 'vitest';
import {
  matchesFilter,
  parseFilter,
  parseOrderBy,
  runComparator,
  SearchSyntaxError,
  tokenize,
  likeToRegExp,
} from '../../src/lib/mlflow/search/index.ts';
import type { Run } from '../../src/lib/mlflow/entities.ts';

function run(over: {
  id?: string;
  start?: number;
  metrics?: Record<string, number>;
  params?: Record<string, string>;
  tags?: Record<string, string>;
  status?: Run['info']['status'];
  name?: string;
  end?: number | null;
}): Run {
  const id = over.id ?? 'a'.repeat(32);
  return {
    info: {
      runId: id,
      experimentId: '1',
      runName: over.name ?? 'brave-fox-1',
      userId: 'ada',
      status: over.status ?? 'FINISHED',
      startTime: over.start ?? 1000,
      endTime: over.end === undefined ? 2000 : over.end,
      artifactUri: `mlflow-artifacts:/1/${id}/artifacts`,
      lifecycleStage: 'active',
    },
    metrics: Object.fromEntries(
      Object.entries(over.metrics ?? {}).map(([key, value]) => [
        key,
        { key, value, step: 0, timestamp: 0 },
      ]),
    ),
    params: over.params ?? {},
    tags: { 'mlflow.runName': over.name ?? 'brave-fox-1', ...(over.tags ?? {}) },
    inputs: [
      {
        dataset: { name: 'iris', digest: 'd1', sourceType: 'local', source: '{}' },
        tags: { 'mlflow.data.context': 'training' },
      },
    ],
  };
}

function syntaxError(filter: string): SearchSyntaxError {
  try {
    parseFilter(filter);
  } catch (e) {
    if (e instanceof SearchSyntaxError) return e;
    throw e;
  }
  throw new Error(`expected a syntax error for: ${filter}`);
}

const r = run({
  metrics: { acc: 0.93, 'f1 score': 0.5, 'train/loss': 0.1, nan: Number.NaN },
  params: { lr: '0.01', model: 'RandomForest', 'learning-rate': '3e-4' },
  tags: { team: 'risk', 'mlflow.parentRunId': 'b'.repeat(32) },
});
const match = (f: string, target: Run = r) => matchesFilter(target, parseFilter(f));

describe('tokenizer', () => {
  it('splits identifiers, strings, numbers and operators with offsets', () => {
    const t = tokenize("metrics.acc >= -1.5e-3 AND params.`a b` != 'it''s'");
    expect(t.map((x) => [x.kind, x.value, x.offset])).toEqual([
      ['word', 'metrics.acc', 0],
      ['op', '>=', 12],
      ['number', '-1.5e-3', 15],
      ['word', 'AND', 23],
      ['word', 'params.', 27],
      ['quotedIdent', 'a b', 34],
      ['op', '!=', 40],
      ['string', "it's", 43],
      ['eof', '', 50],
    ]);
  });
});

describe('filter: metrics', () => {
  it.each([
    ['metrics.acc > 0.9', true],
    ['metrics.acc > 0.93', false],
    ['metrics.acc >= 0.93', true],
    ['metrics.acc < 1', true],
    ['metrics.acc <= 0.5', false],
    ['metrics.acc = 0.93', true],
    ['metrics.acc != 0.93', false],
    ['metric.acc > 0.9', true],
    ['`metrics`.acc > 0.9', true],
    ['metrics.`f1 score` = 0.5', true],
    ['metrics."f1 score" = 0.5', true],
    ['metrics.`train/loss` < 0.2', true],
    ['metrics.acc > 9e-1', true],
    ['metrics.acc > .9', true],
    ['metrics.acc > -1', true],
    ['metrics.missing > 0', false],
    ['metrics.missing != 0', false],
    ['metrics.acc IS NOT NULL', true],
    ['metrics.missing IS NULL', true],
    ['metrics.nan > 0', false],
  ])('%s -> %s', (f, expected) => {
    expect(match(f)).toBe(expected);
  });
});

describe('filter: params and tags', () => {
  it.each([
    ["params.lr = '0.01'", true],
    ['params.lr = "0.01"', true],
    ["params.lr != '0.01'", false],
    ["param.lr = '0.01'", true],
    ["parameter.lr = '0.01'", true],
    ["parameters.lr = '0.01'", true],
    ["params.`learning-rate` = '3e-4'", true],
    ["params.model LIKE 'Random%'", true],
    ["params.model LIKE 'random%'", false],
    ["params.model ILIKE 'random%'", true],
    ["params.model like '%Forest'", true],
    ["params.model LIKE 'R_ndomForest'", true],
    ["params.model LIKE 'R_Forest'", false],
    ["params.missing != 'x'", false],
    ["tags.team = 'risk'", true],
    ["tag.team = 'risk'", true],
    ["tags.mlflow.runName = 'brave-fox-1'", true],
    [`tags.mlflow.parentRunId = '${'b'.repeat(32)}'`, true],
    ["tags.team ILIKE 'RI%'", true],
    ['tags.team IS NULL', false],
    ["params.model LIKE 'a.b'", false],
  ])('%s -> %s', (f, expected) => {
    expect(match(f)).toBe(expected);
  });
});

describe('filter: attributes and datasets', () => {
  it.each([
    ["attributes.status = 'FINISHED'", true],
    ["status = 'FINISHED'", true],
    ["attribute.status != 'FINISHED'", false],
    ["attr.user_id = 'ada'", true],
    ["run.run_name = 'brave-fox-1'", true],
    ["attributes.run_name LIKE 'brave%'", true],
    ["attributes.`Run name` = 'brave-fox-1'", true],
    ["`Run Name` = 'brave-fox-1'", true],
    [`attributes.run_id = '${'a'.repeat(32)}'`, true],
    [`attributes.run_id IN ('${'a'.repeat(32)}', 'x')`, true],
    [`attributes.run_id NOT IN ('${'a'.repeat(32)}')`, false],
    ['attributes.start_time >= 1000', true],
    ['attributes.created > 1000', false],
    ['attributes.end_time = 2000', true],
    ["attributes.artifact_uri LIKE 'mlflow-artifacts:/1/%'", true],
    ["datasets.name = 'iris'", true],
    ["datasets.digest IN ('d1', 'd2')", true],
    ["datasets.context = 'eval'", false],
    ["dataset.context = 'training'", true],
  ])('%s -> %s', (f, expected) => {
    expect(match(f)).toBe(expected);
  });

  it('a run that is still running never matches an end_time comparison', () => {
    expect(match('attributes.end_time > 0', run({ end: null }))).toBe(false);
  });
});

describe('filter: AND, keywords and whitespace', () => {
  it('joins comparisons with AND in any case', () => {
    expect(match("metrics.acc > 0.9 and params.lr = '0.01'")).toBe(true);
    expect(match("metrics.acc > 0.9 AND params.lr = '0.02'")).toBe(false);
    expect(match("  metrics.acc>0.9   And   params.lr='0.01' and tags.team = 'risk'  ")).toBe(true);
  });
  it('an empty filter matches everything', () => {
    expect(parseFilter('')).toEqual([]);
    expect(parseFilter('   ')).toEqual([]);
    expect(parseFilter(undefined)).toEqual([]);
  });
  it('parses a realistic filter into comparisons', () => {
    expect(
      parseFilter(
        "metrics.rmse < 0.8 AND params.model = 'rf' AND tags.mlflow.runName LIKE 'exp-%'",
      ).map((c) => [c.identifier.type, c.identifier.key, c.comparator, c.value]),
    ).toEqual([
      ['metric', 'rmse', '<', 0.8],
      ['param', 'model', '=', 'rf'],
      ['tag', 'mlflow.runName', 'LIKE', 'exp-%'],
    ]);
  });
});

describe('filter: errors point at the offending token', () => {
  it.each([
    ["metrics.acc > 0.9 OR params.lr = '0.01'", 18, 'OR', /Only AND is supported/],
    ['params.lr = 0.01', 12, '0.01', /Parameter value is either not quoted/],
    ['tags.team = risk', 12, 'risk', /Tag value is either not quoted/],
    ["metrics.acc > 'high'", 14, "'high'", /Expected numeric value type for metric/],
    ["metrics.acc LIKE '0.%'", 12, 'LIKE', /Invalid comparator 'LIKE'/],
    ["params.lr > '0.01'", 10, '>', /Invalid comparator '>'/],
    ["foo.bar = 'x'", 0, 'foo.bar', /Invalid entity type 'foo'/],
    ["attributes.colour = 'red'", 0, 'attributes.colour', /Invalid attribute key 'colour'/],
    ["attributes.status IN ('FINISHED')", 18, 'IN', /Only the 'run_id' attribute supports/],
    ['metrics.acc', 11, '', /Expected a comparison operator/],
    ['metrics.acc >', 13, '', /Expected numeric value type/],
    ['metrics.acc > 1 AND', 19, '', /Expected a comparison after 'AND'/],
    ["metrics.acc > 1 params.lr = '1'", 16, 'params.lr', /expected 'AND'/],
    ["params.lr = 'unterminated", 12, "'unterminated", /Unterminated string/],
    ['metrics.`acc > 1', 8, '`acc > 1', /Unterminated backtick/],
    ['metrics.acc == 1', 12, '==', /Invalid comparator '=='/],
    ['metrics.acc > 1 ; drop', 16, ';', /Invalid character ';'/],
    ['(metrics.acc > 1)', 0, '(', /expected an identifier/],
    ['metrics. = 1', 0, 'metrics.', /a key is expected after 'metrics.'/],
    ["attributes.run_id IN 'a'", 21, "'a'", /parenthesized list/],
    ["attributes.run_id IN ('a' 'b')", 26, "'b'", /Expected ',' or '\)'/],
    ["attributes.run_id IN ('a', 1)", 27, '1', /expected a quoted string/],
    ['attributes.start_time > abc', 24, 'abc', /Expected numeric value type for attribute/],
    ["params.lr IS 'x'", 13, "'x'", /Expected 'NULL'/],
    ["params.lr NOT LIKE 'x'", 14, 'LIKE', /Expected 'IN' after 'NOT'/],
    ['metrics.acc > 1abc', 14, '1abc', /Invalid token/],
    ["datasets.size = 'x'", 0, 'datasets.size', /Invalid dataset key 'size'/],
    ['AND metrics.acc > 1', 0, 'AND', /Expected an identifier/],
  ])('%s', (f, offset, token, message) => {
    const e = syntaxError(f);
    expect(e.errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect(e.message).toMatch(message);
    expect(e.offset).toBe(offset);
    expect(e.token).toBe(token);
  });

  it('draws a caret under the offending token', () => {
    expect(syntaxError('metrics.acc > 1 OR x = 1').pointer()).toBe(
      'metrics.acc > 1 OR x = 1\n                ^~',
    );
  });
});

describe('LIKE patterns', () => {
  it('escapes regex characters and honours % and _', () => {
    expect(likeToRegExp('a.b%', false).test('a.bcd')).toBe(true);
    expect(likeToRegExp('a.b%', false).test('axbcd')).toBe(false);
    expect(likeToRegExp('(x)_', false).test('(x)1')).toBe(true);
    expect(likeToRegExp('%\n%', false).test('a\nb')).toBe(true);
  });
});

describe('order_by', () => {
  it('parses identifiers and directions', () => {
    expect(parseOrderBy('metrics.acc DESC')).toEqual({
      identifier: { type: 'metric', key: 'acc', offset: 0 },
      ascending: false,
    });
    expect(parseOrderBy('attributes.start_time')).toMatchObject({
      identifier: { type: 'attribute', key: 'start_time' },
      ascending: true,
    });
    expect(parseOrderBy('params.`lr` asc')).toMatchObject({
      identifier: { type: 'param', key: 'lr' },
      ascending: true,
    });
    expect(parseOrderBy('created desc').identifier.key).toBe('start_time');
    expect(parseOrderBy('tags.mlflow.runName').identifier).toMatchObject({
      type: 'tag',
      key: 'mlflow.runName',
    });
  });

  it.each([
    ['metrics.acc DOWN', /expected ASC, DESC/],
    ['metrics.acc DESC extra', /unexpected 'extra'/],
    ['', /Could not be parsed/],
    ['datasets.name', /Invalid order_by entity type 'dataset'/],
    ['attributes.nope', /Invalid attribute key/],
  ])('rejects %s', (clause, message) => {
    expect(() => parseOrderBy(clause)).toThrow(message);
  });

  it('sorts missing and NaN values last in both directions, then start_time DESC, run_id ASC', () => {
    const runs = [
      run({ id: 'r1', start: 1, metrics: { acc: 0.5 } }),
      run({ id: 'r2', start: 2, metrics: {} }),
      run({ id: 'r3', start: 3, metrics: { acc: 0.9 } }),
      run({ id: 'r4', start: 4, metrics: { acc: Number.NaN } }),
      run({ id: 'r5', start: 3, metrics: { acc: 0.9 } }),
    ];
    const ids = (o: string[]) =>
      [...runs].sort(runComparator(o.map(parseOrderBy))).map((x) => x.info.runId);
    expect(ids(['metrics.acc DESC'])).toEqual(['r3', 'r5', 'r1', 'r4', 'r2']);
    expect(ids(['metrics.acc ASC'])).toEqual(['r1', 'r3', 'r5', 'r4', 'r2']);
    expect(ids([])).toEqual(['r4', 'r3', 'r5', 'r2', 'r1']);
    expect(ids(['attributes.start_time ASC'])).toEqual(['r1', 'r2', 'r3', 'r5', 'r4']);
  });
});
