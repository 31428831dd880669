import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { parse as parseYaml } from 'yaml';
import {
  MLprojectError,
  parseMLproject,
  renderCommand,
  resolveParameters,
  shellQuote,
  writeMLproject,
  type MLproject,
} from '../../src/lib/mlflow/mlproject.ts';
import {
  createProject,
  defaultMLproject,
  exportProjectZip,
  importProjectZip,
  parseCsv,
  parseDataset,
  parseJsonl,
  prepareEvaluation,
  projectSpec,
  saveProjectFile,
  scoreAnswer,
  evalMetrics,
  toTable,
  tableRecords,
  TABLE_COLUMNS,
} from '../../src/lib/services/projects.ts';
import { openDatabase } from '../../src/lib/store/db.ts';

const DEMO = `name: demo
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      data: path
      label: {default: "it's"}
      n: {type: int, default: 3}
    command: "python train.py --alpha {alpha} --data {data} --label {label} --n {n}"
  validate:
    command: "python validate.py"
`;

describe('MLproject: reading', () => {
  it('reads name, environment, entry points and typed parameters with defaults', () => {
    const p = parseMLproject(DEMO);
    expect(p.name).toBe('demo');
    expect(p.pythonEnv).toBe('python_env.yaml');
    expect(p.entryPoints.map((e) => e.name)).toEqual(['main', 'validate']);
    expect(p.entryPoints[0]!.parameters).toEqual([
      { name: 'alpha', type: 'float', default: 0.5 },
      { name: 'data', type: 'path' },
      { name: 'label', type: 'string', default: "it's" },
      { name: 'n', type: 'int', default: 3 },
    ]);
    expect(p.entryPoints[1]!.parameters).toEqual([]);
  });

  it('keeps keys it does not interpret', () => {
    const p = parseMLproject(
      'name: x\ndatabricks_spark_job: {python_file: a.py}\nentry_points: {}\n',
    );
    expect(p.extra).toEqual({ databricks_spark_job: { python_file: 'a.py' } });
  });

  it('names the file, line or key of what is wrong', () => {
    expect(() => parseMLproject('name: [unclosed', 'proj/MLproject')).toThrow(
      /^proj\/MLproject:1: not valid YAML/,
    );
    expect(() => parseMLproject('- a\n- b\n')).toThrow(
      /MLproject: expected a mapping at the top level/,
    );
    expect(() => parseMLproject('entry_points:\n  main:\n    parameters: {}\n')).toThrow(
      /key 'entry_points\.main\.command': expected a command string, got nothing/,
    );
    expect(() =>
      parseMLproject('entry_points:\n  main:\n    parameters: {a: [1]}\n    command: x\n'),
    ).toThrow(/key 'entry_points\.main\.parameters\.a': expected a type name or \{type, default\}/);
    expect(() =>
      parseMLproject(
        'entry_points:\n  main:\n    parameters: {a: {default: [1]}}\n    command: x\n',
      ),
    ).toThrow(/entry_points\.main\.parameters\.a\.default': expected a scalar default/);
    expect(() => parseMLproject('python_env: a.yaml\nconda_env: b.yaml\n')).toThrow(
      /only one of python_env, conda_env and docker_env/,
    );
    expect(() => parseMLproject('docker_env: {volumes: []}\n')).toThrow(
      /key 'docker_env': expected a mapping with an 'image'/,
    );
    expect(() =>
      parseMLproject('entry_points: {main: {command: a}, main: {command: b}}\n'),
    ).toThrow(MLprojectError);
  });
});

describe('MLproject: writing', () => {
  it('round-trips: parse(write(p)) equals p', () => {
    const cases: MLproject[] = [
      parseMLproject(DEMO),
      defaultMLproject('capitals eval'),
      {
        name: 'yes',
        condaEnv: 'conda.yaml',
        entryPoints: [
          {
            name: 'on',
            parameters: [
              { name: 'flag', type: 'string', default: 'no' },
              { name: 'when', type: 'string', default: '2024-01-01' },
              { name: 'x', type: 'float', default: 1 },
              { name: 'nothing', type: 'string', default: null },
              { name: 'u', type: 'uri' },
            ],
            command: 'echo {flag} {{literal}} "quoted: yes"',
          },
        ],
        extra: { custom: { a: 1 } },
      },
    ];
    for (const p of cases) expect(parseMLproject(writeMLproject(p))).toEqual(p);
  });

  it('writes scalars a YAML 1.1 reader (PyYAML, used by mlflow run) reads as the same type', () => {
    const text = writeMLproject({
      name: 'p',
      entryPoints: [
        {
          name: 'main',
          parameters: [
            { name: 'flag', type: 'string', default: 'yes' },
            { name: 'rate', type: 'float', default: 0 },
          ],
          command: 'python run.py',
        },
      ],
      extra: {},
    });
    // 'yes' is a boolean to PyYAML unless quoted; a float default keeps its decimal point.
    expect(text).toContain("default: 'yes'");
    expect(text).toContain('default: 0.0');
    expect(parseYaml(text, { version: '1.1' })).toEqual({
      name: 'p',
      entry_points: {
        main: {
          parameters: {
            flag: { type: 'string', default: 'yes' },
            rate: { type: 'float', default: 0 },
          },
          command: 'python run.py',
        },
      },
    });
  });
});

describe('MLproject: parameters and the command', () => {
  const main = parseMLproject(DEMO).entryPoints[0]!;

  it('fills defaults, converts types and keeps undeclared values as extras', () => {
    const r = resolveParameters(main, { data: 'rows.csv', alpha: '0.25', extra_flag: 'x y' });
    expect(r.values).toEqual({ alpha: 0.25, data: 'rows.csv', label: "it's", n: 3 });
    expect(r.extra).toEqual({ extra_flag: 'x y' });
    expect(renderCommand(main, r)).toBe(
      `python train.py --alpha 0.25 --data rows.csv --label 'it'"'"'s' --n 3 --extra_flag 'x y'`,
    );
  });

  it('refuses missing required parameters and values that do not convert', () => {
    expect(() => resolveParameters(main, {})).toThrow(
      /no value given for missing parameters: 'data'/,
    );
    expect(() => resolveParameters(main, { data: 'd', alpha: 'high' })).toThrow(
      /parameter 'alpha' of type float got "high", expected a number/,
    );
    expect(() => resolveParameters(main, { data: 'd', n: '2.5' })).toThrow(
      /parameter 'n' of type int got "2.5", expected an integer/,
    );
  });

  it('prints a whole float as Python does and quotes like shlex.quote', () => {
    const r = resolveParameters(main, { data: 'd', alpha: 2 });
    expect(renderCommand(main, r)).toContain('--alpha 2.0');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a-b_c/d.e')).toBe('a-b_c/d.e');
    expect(shellQuote('$(rm -rf /)')).toBe("'$(rm -rf /)'");
  });

  it('names an unknown placeholder in the command', () => {
    const ep = { name: 'main', parameters: [], command: 'run {missing}' };
    expect(() => renderCommand(ep, { values: {}, extra: {} })).toThrow(
      /entry_points\.main\.command': the command uses \{missing\}/,
    );
  });
});

describe('evaluation datasets', () => {
  it('reads JSON Lines with optional expected answers; errors name the line', () => {
    expect(parseJsonl('{"prompt": "a"}\n\n{"prompt": "b", "expected": 4}\n')).toEqual([
      { prompt: 'a' },
      { prompt: 'b', expected: '4' },
    ]);
    expect(() => parseJsonl('{"prompt": "a"}\n{"prompt": 1}\n', 'q.jsonl')).toThrow(
      /^q\.jsonl:2: expected a string "prompt"/,
    );
    expect(() => parseJsonl('{"prompt": "a"}\n{oops\n', 'q.jsonl')).toThrow(
      /^q\.jsonl:2: not valid JSON/,
    );
  });

  it('reads CSV with quoted commas, quotes and newlines', () => {
    const csv = '\ufeffprompt,expected\r\n"Hello, world","say ""hi"""\r\n"two\nlines",\nplain,x\n';
    expect(parseCsv(csv)).toEqual([
      { prompt: 'Hello, world', expected: 'say "hi"' },
      { prompt: 'two\nlines' },
      { prompt: 'plain', expected: 'x' },
    ]);
    expect(() => parseCsv('question\nx\n', 'd.csv')).toThrow(
      /^d\.csv:1: the header needs a "prompt" column/,
    );
    expect(() => parseCsv('prompt,expected\na,b,c\n', 'd.csv')).toThrow(
      /^d\.csv:2: expected 2 fields/,
    );
    expect(() => parseCsv('prompt\n"open\n', 'd.csv')).toThrow(
      /^d\.csv:2: a quoted field is not closed/,
    );
    expect(() => parseDataset('x', 'd.parquet')).toThrow(/expected a \.jsonl or \.csv dataset/);
  });

  it('scores answers and aggregates metrics only over rows with an expected answer', () => {
    expect(scoreAnswer(' Paris ', 'paris')).toEqual({
      exact_match: false,
      contains_expected: true,
    });
    expect(scoreAnswer('Paris', 'Paris')).toEqual({ exact_match: true, contains_expected: true });
    expect(scoreAnswer('x', null)).toEqual({ exact_match: null, contains_expected: null });
    const base = {
      prompt: 'p',
      output: 'o',
      latency_ms: 10,
      ttft_ms: 1,
      tokens_per_second: 5,
      prompt_tokens: 3,
      completion_tokens: 2,
      finish_reason: 'length',
    };
    const rows = [
      { ...base, row: 0, expected: 'o', exact_match: true, contains_expected: true },
      {
        ...base,
        row: 1,
        expected: 'q',
        exact_match: false,
        contains_expected: false,
        latency_ms: 30,
      },
      { ...base, row: 2, expected: null, exact_match: null, contains_expected: null },
    ];
    expect(evalMetrics(rows)).toMatchObject({
      rows_evaluated: 3,
      mean_latency_ms: 50 / 3,
      exact_match_rate: 0.5,
      contains_expected_rate: 0.5,
      total_completion_tokens: 6,
    });
    const table = toTable(rows);
    expect(table.columns).toEqual(TABLE_COLUMNS);
    expect(tableRecords(JSON.parse(JSON.stringify(table)))[1]).toMatchObject({
      row: 1,
      expected: 'q',
    });
    expect(() => tableRecords({ columns: ['a'], data: [[1, 2]] })).toThrow(
      /data\[0\] must be a list of 1 values/,
    );
  });
});

describe('evaluation projects', () => {
  it('creates a project whose MLproject resolves to generation settings and the dataset', async () => {
    const db = await openDatabase({ name: 'projects-create' });
    const rows = Array.from({ length: 20 }, (_, i) => ({
      prompt: `What is ${i} + 1?`,
      expected: String(i + 1),
    }));
    const p = await createProject(db, { name: 'Arithmetic', rows });
    expect(Object.keys(p.files).sort()).toEqual([
      'MLproject',
      'data.jsonl',
      'evaluate.py',
      'python_env.yaml',
    ]);
    const prep = prepareEvaluation(p, 'main', { max_tokens: '8', temperature: 0.5 }, 'chat');
    expect(prep.rows).toHaveLength(20);
    expect(prep.generation).toMatchObject({ max_tokens: 8, temperature: 0.5 });
    expect(prep.command).toContain('--temperature 0.5 --max-tokens 8');
    expect(() => prepareEvaluation(p, 'train', {}, 'chat')).toThrow(
      /no entry point 'train'; the project has 'main'/,
    );
    await expect(saveProjectFile(db, p.id, 'MLproject', 'entry_points: [1]')).rejects.toThrow(
      /key 'entry_points': expected a mapping/,
    );
    await expect(saveProjectFile(db, p.id, 'data.jsonl', '{"nope": 1}')).rejects.toThrow(
      /data\.jsonl:1/,
    );
    db.close();
  });

  it('exports a zip that imports back to the same files, and refuses unsafe zips', async () => {
    const db = await openDatabase({ name: 'projects-zip' });
    const p = await createProject(db, {
      name: 'Capitals / v2',
      dataset: { name: 'data.csv', text: 'prompt,expected\nCapital of France?,Paris\n' },
    });
    const zip = await exportProjectZip(p);
    const entries = unzipSync(new Uint8Array(await zip.arrayBuffer()));
    expect(Object.keys(entries).sort()).toEqual([
      'Capitals-v2/MLproject',
      'Capitals-v2/data.csv',
      'Capitals-v2/evaluate.py',
      'Capitals-v2/python_env.yaml',
    ]);
    const back = await importProjectZip(db, Object.assign(zip, { name: 'capitals.zip' }));
    expect(back.files).toEqual(p.files);
    expect(back.name).toBe('Capitals / v2');
    expect(projectSpec(back).entryPoints[0]!.parameters[0]).toEqual({
      name: 'dataset',
      type: 'path',
      default: 'data.csv',
    });

    const evil = new Blob([
      zipSync({
        MLproject: strToU8('name: x\nentry_points: {}\n'),
        '../../escape.txt': strToU8('x'),
      }),
    ]);
    await expect(importProjectZip(db, Object.assign(evil, { name: 'evil.zip' }))).rejects.toThrow(
      /escape\.txt/,
    );
    const none = new Blob([zipSync({ 'a/b/MLproject': strToU8('name: x') })]);
    await expect(importProjectZip(db, Object.assign(none, { name: 'deep.zip' }))).rejects.toThrow(
      /deep\.zip: no MLproject file at the top/,
    );
    const badData = new Blob([
      zipSync({
        'p/MLproject': strToU8(writeMLproject(defaultMLproject('p'))),
        'p/data.jsonl': strToU8('not json\n'),
      }),
    ]);
    await expect(importProjectZip(db, Object.assign(badData, { name: 'p.zip' }))).rejects.toThrow(
      /data\.jsonl:1: not valid JSON/,
    );
    db.close();
  });
});
