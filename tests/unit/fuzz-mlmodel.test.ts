// Property-based tests of the MLmodel and signature readers: whatever text a model file holds,
// the readers either return a model or throw their own error type (MLmodelError,
// SignatureParseError) naming the file or key; and what the writer produces reads back equal.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_MLMODEL_CHARS,
  MLmodelError,
  parseMLmodel,
  writeMLmodel,
  type MLmodel,
} from '../../src/lib/mlflow/mlmodel.ts';
import {
  DATA_TYPES,
  SignatureParseError,
  parseSchema,
  parseSignature,
  schemaToJson,
  type ColSpec,
  type ColType,
  type DataType,
  type Schema,
} from '../../src/lib/mlflow/signature.ts';
import { dumpPyYaml } from '../../src/lib/mlflow/pyyaml.ts';

const RUNS = { numRuns: 300 };

function onlyDocumented(run: () => unknown, ...types: (new (...a: never[]) => Error)[]): void {
  try {
    run();
  } catch (e) {
    if (types.some((t) => e instanceof t)) return;
    throw new Error(`undocumented ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
  }
}

// YAML-looking text: fragments that exercise the parser's corners (anchors, tags, flow
// collections, block scalars, duplicate keys, tabs, documents markers) glued at random.
const yamlFragment = fc.constantFrom(
  'flavors:\n',
  '  python_function:\n',
  '    loader_module: mlflow.transformers\n',
  '    python_version: 3.10.12\n',
  '  transformers:\n    task: text-generation\n',
  'signature:\n',
  '  inputs: \'[{"type": "string", "name": "prompt"}]\'\n',
  '  outputs: \'[{"type": "string"}]\'\n',
  '  params: null\n',
  'metadata: {task: llm/v1/chat}\n',
  'run_id: 0123456789abcdef0123456789abcdef\n',
  'artifact_path: model\n',
  'a: &x [1, 2, 3]\n',
  'b: *x\n',
  'c: !!python/object:os.system ls\n',
  'd: !custom {x: 1}\n',
  '---\n',
  '...\n',
  'e: |\n  line\n',
  'f: >-\n  folded\n',
  '\t\n',
  'flavors: []\n',
  'flavors: null\n',
  'flavors:\n  onnx: {onnx_version: 1.16}\n',
  '? complex\n: key\n',
  'g: "unterminated\n',
  'h: [1, {a: b}, 2\n',
  'utc_time_created: 2024-01-01 00:00:00.000000\n',
  'model_size_bytes: 12\n',
  'env_vars: [A, B]\n',
  '<<: {merge: yes}\n',
  '%YAML 1.1\n',
  '%TAG !e! tag:example.com,2000:\n',
);
const yamlish = fc.array(fc.oneof(yamlFragment, fc.string({ maxLength: 20 })), { maxLength: 14 });

describe('MLmodel reader under arbitrary input', () => {
  it('throws only MLmodelError for arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        onlyDocumented(() => parseMLmodel(text, 'model/MLmodel'), MLmodelError);
      }),
      RUNS,
    );
  });

  it('throws only MLmodelError for YAML-shaped text (tags, anchors, flow, blocks)', () => {
    fc.assert(
      fc.property(yamlish, (parts) => {
        onlyDocumented(() => parseMLmodel(parts.join(''), 'MLmodel'), MLmodelError);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses an alias expansion bomb with MLmodelError, quickly', () => {
    const lines = [
      'flavors: {python_function: {loader_module: m}}',
      'a0: &a0 [x, x, x, x, x, x, x, x, x]',
    ];
    for (let i = 1; i < 9; i++)
      lines.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    const t0 = performance.now();
    expect(() => parseMLmodel(lines.join('\n'), 'MLmodel')).toThrow(MLmodelError);
    expect(() => parseMLmodel(lines.join('\n'), 'MLmodel')).toThrow(/aliases expand too far/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('keeps unknown YAML tags inert: a python/object tag is plain text, nothing is resolved', () => {
    const m = parseMLmodel(
      'flavors:\n  python_function: {loader_module: m}\nmetadata:\n  x: !!python/object/apply:os.system ["echo hi"]\n',
    );
    expect(m.metadata).toEqual({ x: ['echo hi'] });
  });

  it('refuses an oversized MLmodel before parsing', () => {
    const big = 'flavors: {}\n#' + 'x'.repeat(MAX_MLMODEL_CHARS);
    expect(() => parseMLmodel(big, 'MLmodel')).toThrow(/too large/);
  });
});

// ---------------------------------------------------------------- signatures

const dataType = fc.constantFrom(...(DATA_TYPES as readonly DataType[]));
const fieldName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_ .-]{0,12}$/);

const colType: fc.Arbitrary<ColType> = fc.letrec<{ t: ColType }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    dataType.map((type): ColType => ({ type })),
    fc.record({ type: fc.constant('array' as const), items: tie('t') }) as fc.Arbitrary<ColType>,
    fc
      .uniqueArray(fc.record({ name: fieldName, type: tie('t'), required: fc.boolean() }), {
        minLength: 1,
        maxLength: 3,
        selector: (p) => p.name,
      })
      .map((properties): ColType => ({ type: 'object', properties }) as unknown as ColType),
  ),
})).t;

describe('signature reader', () => {
  it('throws only SignatureParseError for arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), fc.json({ maxDepth: 3 }), (inputs, outputs) => {
        onlyDocumented(() => parseSignature({ inputs, outputs }), SignatureParseError);
        onlyDocumented(() => parseSchema(inputs, 'signature.inputs'), SignatureParseError);
      }),
      RUNS,
    );
  });

  it('throws only SignatureParseError for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        onlyDocumented(() => parseSchema(s), SignatureParseError);
        onlyDocumented(
          () => parseSignature({ inputs: s, outputs: null, params: s }),
          SignatureParseError,
        );
      }),
      RUNS,
    );
  });

  it('round-trips generated column schemas through JSON', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: fieldName, type: colType, required: fc.boolean() }), {
          minLength: 1,
          maxLength: 4,
          selector: (c) => c.name,
        }),
        (cols) => {
          const raw = JSON.stringify(
            cols.map((c) => ({ ...toJsonType(c.type), name: c.name, required: c.required })),
          );
          const schema = parseSchema(raw);
          const again = parseSchema(schemaToJson(schema));
          expect(again).toEqual(schema);
          expect((schema as ColSpec[]).map((c) => c.name)).toEqual(cols.map((c) => c.name));
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** MLflow's JSON form of a column type (what `Schema.to_json` writes). */
function toJsonType(t: ColType): Record<string, unknown> {
  const any = t as unknown as Record<string, unknown> & {
    items?: ColType;
    properties?: { name: string; type: ColType; required: boolean }[];
  };
  if (any.type === 'array') return { type: 'array', items: toJsonType(any.items!) };
  if (any.type === 'object') {
    return {
      type: 'object',
      properties: Object.fromEntries(
        any.properties!.map((p) => [p.name, { ...toJsonType(p.type), required: p.required }]),
      ),
    };
  }
  return { type: any.type };
}

// ---------------------------------------------------------------- whole MLmodel round trip

const scalarText = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.constantFrom('null', 'true', 'yes', '~', '0x1F', '1e3', '- x', ': y', '#z', "'q'", '"dq"'),
);
const metadata = fc.dictionary(
  fc.stringMatching(/^[a-z_]{1,10}$/),
  fc.oneof(scalarText, fc.integer(), fc.boolean(), fc.array(scalarText, { maxLength: 3 })),
  { maxKeys: 4 },
);

describe('MLmodel writer and reader agree', () => {
  it('parse(write(m)) equals m for generated models', () => {
    fc.assert(
      fc.property(
        fc.record({
          artifactPath: fc.option(fc.stringMatching(/^[a-z_/]{1,12}$/), { nil: undefined }),
          runId: fc.option(fc.stringMatching(/^[0-9a-f]{32}$/), { nil: undefined }),
          loader: fc.stringMatching(/^[a-z_.]{1,20}$/),
          pyVersion: fc.constantFrom('3.10.12', '3.11.9', '3.12.0'),
          task: fc.option(fc.constantFrom('llm/v1/chat', 'text-generation'), { nil: undefined }),
          metadata: fc.option(metadata, { nil: undefined }),
          inputs: fc.option(
            fc.uniqueArray(fc.record({ name: fieldName, type: colType }), {
              minLength: 1,
              maxLength: 3,
              selector: (c) => c.name,
            }),
            { nil: undefined },
          ),
          extraKey: fc.option(fc.tuple(fc.stringMatching(/^x_[a-z]{1,8}$/), scalarText), {
            nil: undefined,
          }),
        }),
        (g) => {
          const dict: Record<string, unknown> = {
            flavors: {
              python_function: { loader_module: g.loader, python_version: g.pyVersion },
              ...(g.task
                ? { transformers: { task: 'text-generation', inference_task: g.task } }
                : {}),
            },
          };
          if (g.artifactPath !== undefined) dict.artifact_path = g.artifactPath;
          if (g.runId !== undefined) dict.run_id = g.runId;
          if (g.metadata !== undefined) dict.metadata = g.metadata;
          if (g.inputs !== undefined) {
            dict.signature = {
              inputs: JSON.stringify(
                g.inputs.map((c) => ({ ...toJsonType(c.type), name: c.name, required: true })),
              ),
              outputs: null,
              params: null,
            };
          }
          if (g.extraKey) dict[g.extraKey[0]] = g.extraKey[1];
          const first: MLmodel = parseMLmodel(dumpPyYaml(dict, { sortKeys: true }));
          const text = writeMLmodel(first);
          const second = parseMLmodel(text);
          expect(second).toEqual(first);
          expect(writeMLmodel(second)).toBe(text);
        },
      ),
      { numRuns: 200 },
    );
  });
});
