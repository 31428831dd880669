// transformers.js (Node, device "cpu" = onnxruntime-node) loads the fixture's web layout from the
// local folder with no network and generates the same greedy ids as a plain onnxruntime loop.
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
  type PreTrainedTokenizer,
  type Tensor,
} from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyPhi3, greedyOrtNode, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

let paths: TinyPhi3Paths;
let tokenizer: PreTrainedTokenizer;

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '';
  tokenizer = await AutoTokenizer.from_pretrained(paths.web);
});

describe.each(['q4', 'q4f16'] as const)(
  'transformers.js on the tiny Phi-3 web layout (%s)',
  (dtype) => {
    it('generates the same greedy ids as the onnxruntime-node loop', async () => {
      const model = await AutoModelForCausalLM.from_pretrained(paths.web, { dtype, device: 'cpu' });
      try {
        const prompt = tokenizer.apply_chat_template(
          [
            { role: 'system', content: 'You are a helpful assistant.' },
            { role: 'user', content: 'Hello! What is the capital of France?' },
          ],
          { tokenize: false, add_generation_prompt: true },
        ) as string;
        const inputs = tokenizer(prompt, { add_special_tokens: false });
        const promptIds = Array.from(inputs.input_ids.data as BigInt64Array, Number);
        const out = (await model.generate({
          ...inputs,
          max_new_tokens: 16,
          do_sample: false,
        })) as Tensor;
        const generated = Array.from(out.data as BigInt64Array, Number).slice(promptIds.length);

        const session = await ort.InferenceSession.create(
          join(paths.web, 'onnx', `model_${dtype}.onnx`),
        );
        const reference = await greedyOrtNode(ort, session, promptIds, 16, { stopOnEos: true });
        expect(generated).toEqual(reference.ids);
        expect(generated).toHaveLength(16);
        expect(tokenizer.decode(generated, { skip_special_tokens: true }).length).toBeGreaterThan(
          10,
        );
      } finally {
        await model.dispose();
      }
    });
  },
);
