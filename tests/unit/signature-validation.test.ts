import { describe, expect, it } from 'vitest';
import { parseServingRequest, validateRequest } from '../../src/lib/mlflow/signature-validate.ts';
import {
  llmV1ChatSignature,
  parseSignature,
  promptToStringSignature,
} from '../../src/lib/mlflow/signature.ts';
import { MlflowError } from '../../src/lib/mlflow/errors.ts';

function fails(fn: () => unknown): MlflowError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MlflowError);
    return e as MlflowError;
  }
  throw new Error('expected the request to be refused');
}

describe('validating a chat request (llm/v1/chat)', () => {
  const sig = llmV1ChatSignature();

  it('accepts messages with optional settings', () => {
    const r = validateRequest(sig, {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      temperature: 0.2,
      max_tokens: 20,
      stop: ['<|end|>'],
    });
    expect(r.ok).toBe(true);
    expect(r.value.rows).toHaveLength(1);
    expect(r.value.rows[0]).toMatchObject({ temperature: 0.2, max_tokens: 20, stop: ['<|end|>'] });
  });

  it('refuses a request without messages, naming the missing input', () => {
    const e = fails(() => validateRequest(sig, { temperature: 0.5, foo: 1 }));
    expect(e.errorCode).toBe('INVALID_PARAMETER_VALUE');
    expect(e.message).toBe(
      "Model is missing inputs ['messages']. Note that there were extra inputs: ['foo'].",
    );
  });

  it('refuses a message without a role and a role of the wrong type', () => {
    expect(fails(() => validateRequest(sig, { messages: [{ content: 'x' }] })).message).toMatch(
      /column messages at messages\[0\]\. Missing required properties: \['role'\]/,
    );
    expect(fails(() => validateRequest(sig, { messages: [{ role: 5 }] })).message).toMatch(
      /at messages\[0\]\.role\. Can not safely convert int 5 to string/,
    );
    expect(
      fails(() => validateRequest(sig, { messages: [{ role: 'user', colour: 'red' }] })).message,
    ).toMatch(/Invalid properties not defined in the schema found: \['colour'\]/);
  });

  it('refuses a wrong scalar type and a non-integer token count', () => {
    expect(fails(() => validateRequest(sig, { messages: [], temperature: 'hot' })).message).toMatch(
      /Incompatible input types for column temperature\. Can not safely convert str 'hot' to double/,
    );
    expect(fails(() => validateRequest(sig, { messages: [], max_tokens: 2.5 })).message).toMatch(
      /convert float 2.5 to long/,
    );
  });

  it('refuses params when the signature has no params schema', () => {
    const e = fails(() => validateRequest(sig, { messages: [] }, { top_k: 3 }));
    expect(e.message).toMatch(/does not define a params schema.*\['top_k'\]/);
    expect(
      validateRequest(sig, { messages: [] }, { top_k: 3 }, { unknownParams: 'ignore' }).value
        .params,
    ).toEqual({});
  });
});

describe('validating a prompt request ({prompt} -> string)', () => {
  const sig = promptToStringSignature();

  it('accepts a dict, a list of prompts and a dataframe_split body', () => {
    expect(validateRequest(sig, { prompt: 'Hi' }).value.rows).toEqual([{ prompt: 'Hi' }]);
    expect(validateRequest(sig, { prompt: ['a', 'b'] }).value.rows).toEqual([
      { prompt: 'a' },
      { prompt: 'b' },
    ]);
    const { input } = parseServingRequest({
      dataframe_split: { columns: ['prompt'], data: [['x']] },
    });
    expect(validateRequest(sig, input).value.rows).toEqual([{ prompt: 'x' }]);
    expect(validateRequest(sig, [{ prompt: 'y' }]).value.rows).toEqual([{ prompt: 'y' }]);
  });

  it('refuses a missing or null prompt', () => {
    expect(fails(() => validateRequest(sig, { text: 'x' })).message).toBe(
      "Model is missing inputs ['prompt']. Note that there were extra inputs: ['text'].",
    );
    expect(fails(() => validateRequest(sig, [{ prompt: null }])).message).toMatch(
      /'prompt' is required but got None/,
    );
  });
});

describe('validating params', () => {
  const sig = parseSignature({
    inputs: '[{"type": "string", "name": "prompt", "required": true}]',
    outputs: null,
    params:
      '[{"name": "max_new_tokens", "default": 100, "shape": null, "type": "long"}, {"name": "temperature", "default": 0.2, "shape": null, "type": "double"}, {"name": "stop", "default": [], "shape": [-1], "type": "string"}]',
  });

  it('fills in defaults and keeps given values', () => {
    expect(validateRequest(sig, { prompt: 'x' }, { temperature: 0.7 }).value.params).toEqual({
      max_new_tokens: 100,
      temperature: 0.7,
      stop: [],
    });
  });

  it('refuses unknown params and params of the wrong type or shape', () => {
    expect(fails(() => validateRequest(sig, { prompt: 'x' }, { top_q: 1 })).message).toBe(
      "Unrecognized params ['top_q']: the model signature defines params ['max_new_tokens', 'temperature', 'stop'].",
    );
    expect(
      fails(() => validateRequest(sig, { prompt: 'x' }, { max_new_tokens: 'many' })).message,
    ).toBe(
      "Failed to validate type and shape for 'max_new_tokens' (long), error: Can not safely convert str 'many' to long.",
    );
    expect(fails(() => validateRequest(sig, { prompt: 'x' }, { stop: 'x' })).message).toMatch(
      /1D array/,
    );
  });
});

describe('scoring-server bodies', () => {
  it('splits inputs and params and refuses ambiguous bodies', () => {
    expect(parseServingRequest({ inputs: { prompt: 'a' }, params: { t: 1 } })).toEqual({
      input: { prompt: 'a' },
      params: { t: 1 },
    });
    expect(parseServingRequest({ messages: [] })).toEqual({ input: { messages: [] } });
    expect(() => parseServingRequest({ inputs: 1, instances: 2 })).toThrow(/exactly one of/);
    expect(() => parseServingRequest({ foo: 1 })).toThrow(MlflowError);
  });

  it('checks named tensor inputs', () => {
    const sig = parseSignature({
      inputs:
        '[{"name": "input_ids", "type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, -1]}}, {"name": "attention_mask", "type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, -1]}}]',
    });
    expect(fails(() => validateRequest(sig, { input_ids: [[1]] })).message).toBe(
      "Model is missing inputs ['attention_mask'].",
    );
    expect(validateRequest(sig, { input_ids: [[1]], attention_mask: [[1]] }).ok).toBe(true);
  });
});
