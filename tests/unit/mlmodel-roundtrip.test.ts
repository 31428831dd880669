import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MLmodelError,
  inferenceTask,
  isReferenceOnly,
  parseMLmodel,
  pyfuncArtifacts,
  writeMLmodel,
} from '../../src/lib/mlflow/mlmodel.ts';
import {
  col,
  isChatSignature,
  isPromptToStringSignature,
  llmV1ChatSignature,
  parseSchema,
  parseSignature,
  promptToStringSignature,
  schemaToJson,
  paramsToJson,
  signatureToStrings,
  type Signature,
} from '../../src/lib/mlflow/signature.ts';
import { dumpPyYaml } from '../../src/lib/mlflow/pyyaml.ts';
import { PyFloat, pyFloatRepr, pyJsonDumps } from '../../src/lib/mlflow/pyjson.ts';
import {
  parseInputExample,
  writeInputExample,
  type InputExample,
} from '../../src/lib/mlflow/input-example.ts';

// An MLmodel in the exact bytes PyYAML writes (sorted keys, indentless lists, folded JSON).
const PYFUNC_GENAI_MLMODEL = `artifact_path: phi3-mini-onnx-model
flavors:
  python_function:
    artifacts:
      phi3-mini-onnx:
        path: artifacts/cpu-int4-rtn-block-32-acc-level-4
        uri: /content/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4
    cloudpickle_version: 3.0.0
    code: null
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.10.12
    streamable: false
mlflow_version: 2.14.3
model_size_bytes: 2730012345
model_uuid: 6f2b1c0a9e8d4f7b8a6c5d4e3f2a1b0c
run_id: 0a1b2c3d4e5f40718293a4b5c6d7e8f9
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "string", "name": "prompt", "required": true}]'
  outputs: '[{"type": "string", "required": true}]'
  params: null
utc_time_created: '2024-07-01 10:11:12.123456'
`;

const FOLDED_SIGNATURE_MLMODEL = `flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_version: '3.10'
is_signature_from_type_hint: false
model_id: null
prompts: null
signature:
  inputs: '[{"type": "string", "name": "prompt", "required": true}, {"type": "double",
    "name": "temperature", "required": false}, {"type": "long", "name": "max_tokens",
    "required": false}]'
  outputs: '[{"type": "double", "name": "score", "required": true}]'
  params: '[{"name": "max_new_tokens", "default": 100, "shape": null, "type": "long"}]'
type_hint_from_example: false
utc_time_created: '2025-11-06 03:46:33.071805'
`;

const TRANSFORMERS_REFERENCE_ONLY = `flavors:
  my_custom_flavor:
    zeta: 1
    alpha: [1, 2]
  transformers:
    components:
    - tokenizer
    inference_task: llm/v1/chat
    pipeline_model_type: Phi3ForCausalLM
    source_model_name: microsoft/Phi-3-mini-4k-instruct
    source_model_revision: 0a67737cc96d2554230f90338b163bc6380a2a85
    task: text-generation
    tokenizer_name: microsoft/Phi-3-mini-4k-instruct
    tokenizer_revision: 0a67737cc96d2554230f90338b163bc6380a2a85
    tokenizer_type: LlamaTokenizerFast
metadata:
  task: llm/v1/chat
some_future_key:
  nested: true
`;

describe('reading and writing MLmodel', () => {
  it('writes back a PyYAML-written file byte for byte', () => {
    for (const text of [PYFUNC_GENAI_MLMODEL, FOLDED_SIGNATURE_MLMODEL]) {
      expect(writeMLmodel(parseMLmodel(text))).toBe(text);
    }
  });

  it('reads the custom-wrapper model: genai artifacts and the {prompt} -> string signature', () => {
    const m = parseMLmodel(PYFUNC_GENAI_MLMODEL);
    expect(m.flavors.python_function?.loader_module).toBe('mlflow.pyfunc.model');
    expect(pyfuncArtifacts(m)).toEqual({
      'phi3-mini-onnx': 'artifacts/cpu-int4-rtn-block-32-acc-level-4',
    });
    expect(isPromptToStringSignature(m.signature)).toBe(true);
    expect(m.signature).toEqual(promptToStringSignature());
    expect(m.utcTimeCreated).toBe('2024-07-01 10:11:12.123456');
    expect(m.modelSizeBytes).toBe(2730012345);
    expect(m.savedInputExampleInfo?.type).toBe('dataframe');
  });

  it('keeps unknown flavors and unknown keys, in their order, and recognises reference-only weights', () => {
    const m = parseMLmodel(TRANSFORMERS_REFERENCE_ONLY);
    expect(Object.keys(m.flavors)).toEqual(['my_custom_flavor', 'transformers']);
    expect(Object.keys(m.flavors.my_custom_flavor!)).toEqual(['zeta', 'alpha']);
    expect(m.extra).toEqual({ some_future_key: { nested: true } });
    expect(inferenceTask(m)).toBe('llm/v1/chat');
    expect(isReferenceOnly(m)).toBe(true);
    const again = parseMLmodel(writeMLmodel(m));
    expect(again).toEqual(m);
    // Unsorted output keeps the order things were read in.
    const unsorted = writeMLmodel(m, { sortKeys: false });
    expect(unsorted.indexOf('zeta')).toBeLessThan(unsorted.indexOf('alpha'));
  });

  it('round-trips the llm/v1/chat transformers model with its full signature', () => {
    const m = {
      artifactPath: 'phi3-mlflow-model',
      flavors: {
        python_function: {
          env: { conda: 'conda.yaml', virtualenv: 'python_env.yaml' },
          loader_module: 'mlflow.transformers',
          python_version: '3.11.9',
        },
        transformers: {
          code: null,
          components: ['tokenizer'],
          framework: 'pt',
          inference_task: 'llm/v1/chat',
          instance_type: 'TextGenerationPipeline',
          model_binary: 'model',
          pipeline_model_type: 'Phi3ForCausalLM',
          source_model_name: 'microsoft/Phi-3-mini-4k-instruct',
          task: 'text-generation',
          tokenizer_type: 'LlamaTokenizerFast',
          torch_dtype: 'torch.bfloat16',
          transformers_version: '4.44.2',
        },
      },
      metadata: { task: 'llm/v1/chat' },
      mlflowVersion: '2.14.3',
      modelUuid: '4d0ab2a2e5e44b51a1ec4a5ab2cd5d3a',
      signature: llmV1ChatSignature(),
      utcTimeCreated: '2024-06-20 08:15:30.123456',
      extra: {},
    };
    const text = writeMLmodel(m);
    expect(text).toMatch(/^ {4}"name": "messages"|inputs: '\[\{"type": "array"/m);
    for (const line of text.split('\n')) {
      // PyYAML folds at spaces once a line passes 80 columns; JSON has a space every few chars.
      expect(line.length).toBeLessThan(100);
    }
    expect(parseMLmodel(text)).toEqual(m);
    expect(isChatSignature(parseMLmodel(text).signature)).toBe(true);
    expect(isReferenceOnly(parseMLmodel(text))).toBe(false);
  });

  it('names the file and line for YAML syntax errors, and the key for wrong values', () => {
    expect(() => parseMLmodel('flavors:\n  a: [1, 2\nx: y\n')).toThrow(MLmodelError);
    expect(() => parseMLmodel('flavors:\n  a: [1, 2\nx: y\n')).toThrow(
      /^MLmodel:\d+: not valid YAML/,
    );
    expect(() => parseMLmodel('run_id: abc\n')).toThrow(
      "MLmodel: missing the required key 'flavors'",
    );
    expect(() => parseMLmodel('flavors: 3\n')).toThrow(/key 'flavors': expected a mapping/);
    expect(() => parseMLmodel('- a\n- b\n')).toThrow(
      'expected a YAML mapping at the top level, got a list',
    );
    expect(() =>
      parseMLmodel(`flavors: {}\nsignature:\n  inputs: '[{"type": "strin", "name": "x"}]'\n`),
    ).toThrow(/signature\.inputs\[0\]\.type: expected a data type/);
    expect(() => parseMLmodel('flavors: {}\nflavors: {}\n')).toThrow(/not valid YAML/);
  });

  it('accepts pre-2.0 pyfunc env strings', () => {
    const m = parseMLmodel(
      'flavors:\n  python_function:\n    env: conda.yaml\n    loader_module: mlflow.sklearn\n',
    );
    expect(m.flavors.python_function?.env).toBe('conda.yaml');
  });
});

describe('signatures', () => {
  it('reads and writes every column type', () => {
    const json =
      '[{"type": "string", "name": "s", "required": true}, {"type": "long", "name": "l", "required": true}, ' +
      '{"type": "double", "name": "d", "required": false}, {"type": "float", "name": "f", "required": true}, ' +
      '{"type": "integer", "name": "i", "required": true}, {"type": "boolean", "name": "b", "required": true}, ' +
      '{"type": "binary", "name": "bin", "required": true}, {"type": "datetime", "name": "dt", "required": true}, ' +
      '{"type": "array", "items": {"type": "array", "items": {"type": "double"}}, "name": "arr", "required": true}, ' +
      '{"type": "object", "properties": {"a": {"type": "string", "required": true}, "b": {"type": "map", "values": {"type": "long"}, "required": false}}, "name": "obj", "required": true}, ' +
      '{"type": "map", "values": {"type": "any"}, "name": "m", "required": false}, {"type": "any", "name": "any", "required": false}]';
    const schema = parseSchema(json);
    expect(schema).toHaveLength(12);
    expect(schemaToJson(schema)).toBe(json);
  });

  it('sorts object properties by name, as MLflow writes them', () => {
    const schema = parseSchema(
      '[{"type": "object", "properties": {"z": {"type": "string", "required": true}, "a": {"type": "long", "required": false}}, "name": "o", "required": true}]',
    );
    expect(schemaToJson(schema)).toBe(
      '[{"type": "object", "properties": {"a": {"type": "long", "required": false}, "z": {"type": "string", "required": true}}, "name": "o", "required": true}]',
    );
  });

  it('reads tensor specs, named and unnamed', () => {
    const named =
      '[{"name": "input_ids", "type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, -1]}}]';
    const unnamed = '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 1]}}]';
    expect(schemaToJson(parseSchema(named))).toBe(named);
    expect(schemaToJson(parseSchema(unnamed))).toBe(unnamed);
    expect(parseSchema(named)[0]).toEqual({
      kind: 'tensor',
      name: 'input_ids',
      dtype: 'int64',
      shape: [-1, -1],
    });
  });

  it('reads params with defaults and shapes, and writes float defaults as Python floats', () => {
    const json =
      '[{"name": "temperature", "default": 1.0, "shape": null, "type": "double"}, ' +
      '{"name": "max_new_tokens", "default": 100, "shape": null, "type": "long"}, ' +
      '{"name": "stop", "default": ["a", "b"], "shape": [-1], "type": "string"}, ' +
      '{"name": "when", "default": "2024-01-01T00:00:00", "shape": null, "type": "datetime"}, ' +
      '{"name": "cfg", "default": {"k": "v"}, "shape": null, "type": "object", "properties": {"k": {"type": "string", "required": true}}}]';
    const sig = parseSignature({ inputs: null, outputs: null, params: json });
    expect(sig.params?.[0]).toEqual({
      name: 'temperature',
      type: 'double',
      default: 1,
      shape: null,
    });
    expect(paramsToJson(sig.params!)).toBe(json);
  });

  it('accepts legacy `optional` and missing `required`', () => {
    const schema = parseSchema(
      '[{"name": "a", "type": "double"}, {"type": "long", "name": "b", "optional": true}]',
    );
    expect(schema.map((s) => s.kind === 'column' && s.required)).toEqual([true, false]);
  });

  it('rejects mixed, half-named and empty schemas with the place named', () => {
    expect(() => parseSchema('[]', 'signature.inputs')).toThrow(
      'signature.inputs: expected at least one spec',
    );
    expect(() => parseSchema('[{"type": "string", "name": "a"}, {"type": "string"}]')).toThrow(
      'all specs named or all unnamed',
    );
    expect(() =>
      parseSchema(
        '[{"type": "string", "name": "a"}, {"name": "t", "type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
      ),
    ).toThrow('only column specs or only tensor specs');
    expect(() => parseSchema('{not json')).toThrow(/expected valid JSON/);
    expect(() => parseSchema('[{"type": "array", "name": "a"}]')).toThrow(
      'schema[0].items: expected a type object',
    );
  });

  it('builds the llm/v1/chat signature exactly as MLflow serializes it', () => {
    const strings = signatureToStrings(llmV1ChatSignature());
    expect(strings.inputs).toBe(CHAT_INPUTS);
    expect(strings.outputs).toBe(CHAT_OUTPUTS);
    expect(strings.params).toBeNull();
    expect(parseSignature(strings)).toEqual(llmV1ChatSignature());
  });

  it('round-trips generated signatures: parse(write(x)) == x', () => {
    const scalar = fc.constantFrom(
      'boolean',
      'integer',
      'long',
      'float',
      'double',
      'string',
      'binary',
      'datetime',
    );
    const { type } = fc.letrec((tie) => ({
      type: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        scalar.map((t) => ({ type: t })),
        fc.constant({ type: 'any' }),
        tie('type').map((items) => ({ type: 'array', items })),
        tie('type').map((values) => ({ type: 'map', values })),
        fc
          .dictionary(
            fc.stringMatching(/^[a-z_]{1,6}$/),
            fc.record({ type: tie('type'), required: fc.boolean() }),
            {
              minKeys: 1,
              maxKeys: 3,
            },
          )
          .map((props) => ({
            type: 'object',
            properties: Object.fromEntries(
              Object.keys(props)
                .sort()
                .map((k) => [k, props[k]]),
            ),
          })),
      ),
    }));
    const sigArb = fc
      .uniqueArray(
        fc.record({ name: fc.stringMatching(/^[a-z]{1,8}$/), type, required: fc.boolean() }),
        {
          minLength: 1,
          maxLength: 4,
          selector: (c) => c.name,
        },
      )
      .map((cols) => ({
        inputs: cols.map((c) => col(c.name, c.type as never, c.required)),
        outputs: [col(undefined, 'string')],
        params: null,
      }));
    fc.assert(
      fc.property(sigArb, (sig) => {
        const strings = signatureToStrings(sig as Signature);
        expect(parseSignature(strings)).toEqual(sig);
        expect(signatureToStrings(parseSignature(strings))).toEqual(strings);
      }),
      { numRuns: 200 },
    );
  });
});

describe('Python text forms', () => {
  it('formats floats as Python repr does', () => {
    expect(
      [1, 0.5, 1e-5, 1e16, 1.5e-7, 123456789012345680000, 0.0001, -2.5, 1e22].map(pyFloatRepr),
    ).toEqual([
      '1.0',
      '0.5',
      '1e-05',
      '1e+16',
      '1.5e-07',
      '1.2345678901234568e+20',
      '0.0001',
      '-2.5',
      '1e+22',
    ]);
  });

  it('writes JSON as json.dumps does: separators, ASCII escapes, indent', () => {
    expect(pyJsonDumps({ a: [1, new PyFloat(2), 'é\n'], b: null })).toBe(
      '{"a": [1, 2.0, "\\u00e9\\n"], "b": null}',
    );
    expect(pyJsonDumps({ a: [1], b: {} }, { indent: 2 })).toBe(
      '{\n  "a": [\n    1\n  ],\n  "b": {}\n}',
    );
  });

  it('quotes YAML scalars as PyYAML does', () => {
    expect(
      dumpPyYaml({
        a: '0',
        b: '3.10',
        c: '3.10.12',
        d: 'None',
        e: 'on',
        f: '',
        g: 'x: y',
        h: '#c',
        i: 'é',
      }),
    ).toBe(
      "a: '0'\nb: '3.10'\nc: 3.10.12\nd: None\ne: 'on'\nf: ''\ng: 'x: y'\nh: '#c'\ni: \"\\xE9\"\n",
    );
    expect(dumpPyYaml({ x: [{ a: 1, b: [] }, [1, 2]], y: new PyFloat(1), z: 1e-5 })).toBe(
      'x:\n- a: 1\n  b: []\n- - 1\n  - 2\ny: 1.0\nz: 1.0e-05\n',
    );
  });
});

describe('input examples', () => {
  it('reads and writes a DataFrame example (the custom wrapper seed) and its serving example', () => {
    const ex: InputExample = {
      type: 'dataframe',
      columns: ['prompt'],
      data: [['<|system|>You are helpful.<|end|><|user|>Hi<|end|><|assistant|>']],
    };
    const w = writeInputExample(ex);
    expect(w.inputExampleJson).toBe(
      '{"columns": ["prompt"], "data": [["<|system|>You are helpful.<|end|><|user|>Hi<|end|><|assistant|>"]]}',
    );
    expect(w.servingInputExampleJson).toBe(
      '{\n  "dataframe_split": {\n    "columns": [\n      "prompt"\n    ],\n    "data": [\n      [\n        "<|system|>You are helpful.<|end|><|user|>Hi<|end|><|assistant|>"\n      ]\n    ]\n  }\n}',
    );
    expect(w.info).toEqual({
      artifact_path: 'input_example.json',
      type: 'dataframe',
      pandas_orient: 'split',
      serving_input_path: 'serving_input_example.json',
    });
    expect(parseInputExample(w.inputExampleJson, w.info)).toEqual(ex);
  });

  it('reads and writes a chat json_object example with params', () => {
    const ex: InputExample = {
      type: 'json_object',
      value: { messages: [{ role: 'user', content: 'Hello!' }] },
      params: { max_new_tokens: 10 },
    };
    const w = writeInputExample(ex);
    expect(w.inputExampleJson).toBe(
      '{"inputs": {"messages": [{"role": "user", "content": "Hello!"}]}, "params": {"max_new_tokens": 10}}',
    );
    expect(JSON.parse(w.servingInputExampleJson)).toEqual({
      messages: [{ role: 'user', content: 'Hello!' }],
      max_new_tokens: 10,
    });
    expect(w.info.params).toBe('true');
    expect(parseInputExample(w.inputExampleJson, w.info)).toEqual(ex);
  });

  it('reads values-oriented frames, ndarrays and old tf-serving examples', () => {
    expect(
      parseInputExample('[[1, 2]]', {
        artifact_path: 'input_example.json',
        type: 'dataframe',
        pandas_orient: 'values',
      }),
    ).toEqual({
      type: 'dataframe',
      columns: ['0', '1'],
      data: [[1, 2]],
    });
    expect(
      parseInputExample('{"inputs": [[1.5]]}', {
        artifact_path: 'input_example.json',
        type: 'ndarray',
        format: 'tf-serving',
      }),
    ).toEqual({ type: 'ndarray', value: [[1.5]] });
    expect(() =>
      parseInputExample('{', { artifact_path: 'input_example.json', type: 'json_object' }),
    ).toThrow(/^input_example.json: not valid JSON/);
  });
});

const CHAT_MESSAGE =
  '{"type": "object", "properties": {"content": {"type": "string", "required": false}, "name": {"type": "string", "required": false}, "refusal": {"type": "string", "required": false}, "role": {"type": "string", "required": true}, "tool_call_id": {"type": "string", "required": false}, "tool_calls": {"type": "array", "items": {"type": "object", "properties": {"function": {"type": "object", "properties": {"arguments": {"type": "string", "required": true}, "name": {"type": "string", "required": true}}, "required": true}, "id": {"type": "string", "required": true}, "type": {"type": "string", "required": true}}}, "required": false}}}';
const CHAT_INPUTS =
  `[{"type": "array", "items": ${CHAT_MESSAGE}, "name": "messages", "required": true}, {"type": "double", "name": "temperature", "required": false}, {"type": "long", "name": "max_tokens", "required": false}, {"type": "array", "items": {"type": "string"}, "name": "stop", "required": false}, {"type": "long", "name": "n", "required": false}, {"type": "boolean", "name": "stream", "required": false}, {"type": "double", "name": "top_p", "required": false}, {"type": "long", "name": "top_k", "required": false}, {"type": "double", "name": "frequency_penalty", "required": false}, {"type": "double", "name": "presence_penalty", "required": false}, ` +
  '{"type": "array", "items": {"type": "object", "properties": {"function": {"type": "object", "properties": {"description": {"type": "string", "required": false}, "name": {"type": "string", "required": true}, "parameters": {"type": "object", "properties": {"additionalProperties": {"type": "boolean", "required": false}, "properties": {"type": "map", "values": {"type": "object", "properties": {"description": {"type": "string", "required": false}, "enum": {"type": "array", "items": {"type": "string"}, "required": false}, "items": {"type": "object", "properties": {"type": {"type": "string", "required": true}}, "required": false}, "type": {"type": "string", "required": true}}}, "required": true}, "required": {"type": "array", "items": {"type": "string"}, "required": false}, "type": {"type": "string", "required": false}}, "required": true}, "strict": {"type": "boolean", "required": false}}, "required": false}, "type": {"type": "string", "required": true}}}, "name": "tools", "required": false}, {"type": "map", "values": {"type": "any"}, "name": "custom_inputs", "required": false}]';
const CHAT_OUTPUTS =
  `[{"type": "string", "name": "id", "required": true}, {"type": "string", "name": "object", "required": true}, {"type": "long", "name": "created", "required": true}, {"type": "string", "name": "model", "required": true}, {"type": "array", "items": {"type": "object", "properties": {"finish_reason": {"type": "string", "required": true}, "index": {"type": "long", "required": true}, "message": ${CHAT_MESSAGE.slice(0, -1)}, "required": true}}}, "name": "choices", "required": true}, ` +
  '{"type": "object", "properties": {"completion_tokens": {"type": "long", "required": true}, "prompt_tokens": {"type": "long", "required": true}, "total_tokens": {"type": "long", "required": true}}, "name": "usage", "required": false}, {"type": "map", "values": {"type": "any"}, "name": "custom_outputs", "required": false}]';
