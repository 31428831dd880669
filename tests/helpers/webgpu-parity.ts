// Judging greedy tokens from onnxruntime-web's WebGPU kernels against onnxruntime-node.
//
// The fixture's graphs are exported with MatMulNBits accuracy_level 4: onnxruntime-node rounds
// the activations to int8 before the int4 dot products, while the WebGPU kernel rounds them its
// own way or not at all (on SwiftShader its tokens equal native's at accuracy_level 0). That
// moves the logits by 1-2% of the largest |logit| (tests/browser/inference-logits.spec.ts
// measures it). On a random-weight model two candidates are sometimes closer than that, and then
// either runtime's greedy choice is right: demanding native's exact ids from WebGPU fails on the
// rounding, not on the engine. So each WebGPU token is judged under native's logits on the
// browser's own ids (teacher forcing): it must be native's argmax, or within the rounding
// tolerance of it.
import * as ortNode from 'onnxruntime-node';
import { argmax, greedyOrtNode } from './tiny-phi3.ts';

/** How far (relative to the largest |logit| of a step) activation rounding may move a logit. */
export const ACTIVATION_ROUNDING_TOL = 0.03;

export interface JudgedStep {
  step: number;
  /** The token the browser chose. */
  id: number;
  /** onnxruntime-node's argmax at this step, fed the browser's ids so far. */
  nativeBest: number;
  /** Native logit of the best minus that of the browser's token, over the largest |logit|. */
  relGap: number;
}

export interface Judgement {
  steps: JudgedStep[];
  /** Steps whose token is not within the tolerance of native's best: each says why. */
  failures: string[];
  /** Steps where the browser chose a near-tie other than native's argmax. */
  nearTies: number;
}

/**
 * Runs `graph` on onnxruntime-node with the prompt, forcing `ids` (the browser's greedy tokens)
 * one step at a time, and judges each of them against native's logits at that step.
 */
export async function judgeGreedy(
  graph: string,
  promptIds: number[],
  ids: number[],
  relTol = ACTIVATION_ROUNDING_TOL,
): Promise<Judgement> {
  const session = await ortNode.InferenceSession.create(graph);
  try {
    const r = await greedyOrtNode(ortNode, session, promptIds, ids.length, { force: ids });
    const steps: JudgedStep[] = [];
    const failures: string[] = [];
    let nearTies = 0;
    ids.forEach((id, step) => {
      const logits = r.logits[step]!;
      let scale = 0;
      for (const x of logits) scale = Math.max(scale, Math.abs(x));
      const best = argmax(logits);
      const relGap = (logits[best]! - logits[id]!) / scale;
      steps.push({ step, id, nativeBest: best, relGap });
      if (id !== best) nearTies++;
      if (!(relGap <= relTol)) {
        failures.push(
          `step ${step}: chose ${id} (native logit ${logits[id]!.toFixed(4)}), native's best is ` +
            `${best} (${logits[best]!.toFixed(4)}): ${(relGap * 100).toFixed(2)}% of the largest ` +
            `|logit| apart, beyond the ${(relTol * 100).toFixed(0)}% activation rounding allows`,
        );
      }
    });
    return { steps, failures, nearTies };
  } finally {
    await session.release();
  }
}
