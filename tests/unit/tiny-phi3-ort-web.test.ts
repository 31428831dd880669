// onnxruntime-web's wasm backend (run in Node) computes the fixture like onnxruntime-node at every
// step. They are not bit-identical: native MatMulNBits at accuracy level 4 quantizes activations
// to int8, while wasm has no 4-bit GEMM and dequantizes the weights to fp32. On logits spanning
// about 20 units that is up to ~0.2 apart, and a near tie can flip a greedy choice, so engines are
// compared on identical inputs (teacher forcing) rather than on their greedy ids.
import * as ortWeb from 'onnxruntime-web';
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { argmax, ensureTinyPhi3, greedyOrtNode, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';

const PROMPT = [1, 32010, 13, 298, 441, 384, 259, 466, 330, 362, 32007, 13, 32001, 13];
const TOLERANCE = { genai: 0.3, q4: 0.3, q4f16: 0.4 } as const;

let paths: TinyPhi3Paths;

beforeAll(async () => {
  paths = await ensureTinyPhi3();
  ortWeb.env.wasm.numThreads = 1;
});

function modelFiles(name: keyof typeof TOLERANCE): { model: string; data: string } {
  if (name === 'genai') return { model: paths.genaiModel, data: `${paths.genaiModel}.data` };
  const model = join(paths.web, 'onnx', `model_${name}.onnx`);
  return { model, data: `${model}_data` };
}

describe.each(['genai', 'q4', 'q4f16'] as const)(
  'tiny Phi-3 %s on onnxruntime-web wasm',
  (name) => {
    it('matches onnxruntime-node logits at every one of 16 greedy steps', async () => {
      const { model, data } = modelFiles(name);
      const web = await ortWeb.InferenceSession.create(readFileSync(model), {
        executionProviders: ['wasm'],
        // The path must be the location string stored in the .onnx, i.e. the data file's name.
        externalData: [{ path: basename(data), data: readFileSync(data) }],
      });
      try {
        const onWeb = await greedyOrtNode(ortWeb, web, PROMPT, 16);
        const native = await ort.InferenceSession.create(model);
        const onNode = await greedyOrtNode(ort, native, PROMPT, 16, { force: onWeb.ids });
        for (let step = 0; step < 16; step++) {
          const a = onWeb.logits[step]!;
          const b = onNode.logits[step]!;
          let diff = 0;
          for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
          expect(diff, `step ${step}`).toBeLessThan(TOLERANCE[name]);
          // Random weights give near ties (step 10 here is one): wasm's pick must be native's best
          // or within the tolerance of it, not necessarily the same id.
          const picked = onWeb.ids[step]!;
          expect(b[argmax(b)]! - b[picked]!, `step ${step}`).toBeLessThan(TOLERANCE[name]);
        }
      } finally {
        await web.release();
      }
    });
  },
);
