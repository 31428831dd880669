/**
 * Choosing the next token from logits: repetition penalty, then temperature, top-k, top-p,
 * then a draw from a seeded generator (the order Hugging Face's samplers use). Temperature 0
 * means greedy (argmax after the repetition penalty).
 */

export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 };

/** A small, fast, seedable generator (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed for requests that did not give one. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x1_0000_0000) >>> 0;
}

/**
 * Hugging Face's repetition penalty: every token already in the context has its logit divided
 * by the penalty when positive and multiplied by it when negative. Changes `logits` in place.
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  context: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of context) {
    if (seen.has(id) || id < 0 || id >= logits.length) continue;
    seen.add(id);
    const v = logits[id]!;
    logits[id] = v > 0 ? v / penalty : v * penalty;
  }
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next token. `context` is every token the model has seen (prompt and generated),
 * used only for the repetition penalty. Does not modify `logits`.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  random: () => number,
  context: Iterable<number> = [],
): number {
  let scores = logits;
  if (params.repetitionPenalty !== 1) {
    scores = Float32Array.from(logits);
    applyRepetitionPenalty(scores, context, params.repetitionPenalty);
  }
  if (!(params.temperature > 0)) return argmax(scores);

  // Candidates sorted by score, cut to top-k.
  const n = scores.length;
  const k = params.topK > 0 ? Math.min(params.topK, n) : n;
  const order = topIndices(scores, k);

  const t = params.temperature;
  const maxScore = scores[order[0]!]! / t;
  const probs = new Float64Array(order.length);
  let sum = 0;
  for (let i = 0; i < order.length; i++) {
    const p = Math.exp(scores[order[i]!]! / t - maxScore);
    probs[i] = p;
    sum += p;
  }
  // Nucleus: the smallest prefix whose probability reaches top_p (always at least one token).
  let keep = order.length;
  if (params.topP < 1) {
    let acc = 0;
    for (let i = 0; i < order.length; i++) {
      acc += probs[i]! / sum;
      if (acc >= params.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += probs[i]!;
  let r = random() * kept;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[keep - 1]!;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  if (k >= n / 4) {
    const all = Array.from({ length: n }, (_, i) => i);
    all.sort((a, b) => values[b]! - values[a]! || a - b);
    return all.slice(0, k);
  }
  // Partial selection keeps the common small-k case cheap on a 32k vocabulary.
  const heap: number[] = [];
  const worse = (a: number, b: number) =>
    values[a]! < values[b]! || (values[a] === values[b] && a > b);
  for (let i = 0; i < n; i++) {
    if (heap.length < k) {
      heap.push(i);
      siftUp(heap, heap.length - 1, worse);
    } else if (worse(heap[0]!, i)) {
      heap[0] = i;
      siftDown(heap, 0, worse);
    }
  }
  return heap.sort((a, b) => values[b]! - values[a]! || a - b);
}

function siftUp(h: number[], i: number, worse: (a: number, b: number) => boolean): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!worse(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function siftDown(h: number[], i: number, worse: (a: number, b: number) => boolean): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < h.length && worse(h[l]!, h[m]!)) m = l;
    if (r < h.length && worse(h[r]!, h[m]!)) m = r;
    if (m === i) return;
    [h[i], h[m]] = [h[m]!, h[i]!];
    i = m;
  }
}
