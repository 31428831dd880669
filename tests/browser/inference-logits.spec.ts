// The engines the app serves with, run in Chromium, agree with onnxruntime-node at every step:
// the tiny Phi-3 in both layouts, on WASM and on WebGPU (SwiftShader), fed the same teacher-forced
// ids, gives logits within a stated tolerance of native with the same top-5 set. A random-weight
// model can give the same greedy ids for different prompts, so the test also checks that the
// prompt changes the browser's step-0 logits.
//
// The worker protocol streams tokens, not logits: the page here is a harness build
// (bench/support/inference-harness) whose own worker builds the same engines from the same
// modules and returns the raw logits.
import { expect, test } from '@playwright/test';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import {
  buildHarness,
  removeHarness,
  serveHarness,
  type HarnessServer,
} from '../../bench/support/inference-harness/build.ts';
import type { InferenceHarness } from '../../bench/support/inference-harness/entry.ts';
import { TextTokenizer } from '../../src/lib/inference/tokenizer.ts';
import { ensureTinyPhi3, greedyOrtNode, type TinyPhi3Paths } from '../helpers/tiny-phi3.ts';
import { listFiles } from './support/fixture-files.ts';

declare global {
  interface Window {
    __harness: InferenceHarness;
  }
}

test.use({ serviceWorkers: 'block' });

const VOCAB = 32064;
const PROMPT = '<|user|>\nTell me about the weather<|end|>\n<|assistant|>\n';
const OTHER = '<|user|>\nWrite a haiku about rivers<|end|>\n<|assistant|>\n';
// SwiftShader runs WebGPU on the CPU at about a second per token: fewer steps there.
const STEPS = { wasm: 16, webgpu: 4 } as const;

/*
 * Two comparisons, each engine against onnxruntime-node on identical inputs:
 * - The graphs as exported (MatMulNBits accuracy_level 4). Here each side rounds the activations
 *   to int8 its own way before the int4 dot products (native MLAS per block; onnxruntime-web's
 *   WebGPU kernel has its own int8 dot-product path), while the wasm kernel dequantizes the
 *   weights and multiplies in fp32. That rounding alone moves the logits by 1-2% of the largest
 *   |logit| (measured: wasm 1.9%, WebGPU 2.1%; native accuracy_level 0 vs 4 differs by
 *   1.0-1.6%). Tolerance 3% of the largest |logit|, and the top-5 sets must agree except for
 *   candidates within that tolerance of 5th place (near-ties the rounding may reorder).
 * - The same graphs patched to accuracy_level 0 on both sides: fp32 activations everywhere, so
 *   only summation order differs (measured ~7e-7 on wasm, ~5e-7 on WebGPU). Tolerance 1e-4 of
 *   the largest |logit|, which catches small real errors (one wrong KV position, a rotary
 *   off by one, a dropped bias) that the loose check would let through.
 */
const REL_TOL_EXPORTED = 0.03;
const REL_TOL_FP32 = 1e-4;

let fixture: TinyPhi3Paths;
let tok: TextTokenizer;
let dist: string;
let server: HarnessServer;
const tempDirs: string[] = [];
let acc0: Record<'genai' | 'web', string>;

test.beforeAll(async () => {
  test.setTimeout(180_000);
  fixture = await ensureTinyPhi3();
  tok = TextTokenizer.fromFiles(
    readFileSync(join(fixture.genai, 'tokenizer.json')),
    readFileSync(join(fixture.genai, 'tokenizer_config.json')),
  );
  acc0 = { genai: fp32ActivationsCopy('genai'), web: fp32ActivationsCopy('web') };
  dist = await buildHarness();
  server = await serveHarness(dist, {
    genai: fixture.genai,
    web: fixture.web,
    'genai-acc0': acc0.genai,
    'web-acc0': acc0.web,
  });
});

test.afterAll(async () => {
  await server?.close();
  if (dist) removeHarness(dist);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function graphOf(layout: 'web' | 'genai', root?: string): string {
  const dir = root ?? (layout === 'genai' ? fixture.genai : fixture.web);
  return layout === 'genai'
    ? join(dir, basename(fixture.genaiModel))
    : join(dir, 'onnx', 'model_q4.onnx');
}

/**
 * A copy of a layout's folder with every MatMulNBits set to accuracy_level 0 (fp32 activations
 * on native too). The attribute is patched in place in the protobuf bytes: the name
 * "accuracy_level" followed by field 3 (int) = 4 becomes = 0, the same length. A copy, not links:
 * onnxruntime refuses external data reached through a link.
 */
function fp32ActivationsCopy(layout: 'web' | 'genai'): string {
  const src = layout === 'genai' ? fixture.genai : fixture.web;
  const dir = mkdtempSync(join(tmpdir(), `logits-acc0-${layout}-`));
  tempDirs.push(dir);
  for (const rel of listFiles(src)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    if (!rel.endsWith('.onnx')) {
      copyFileSync(join(src, rel), join(dir, rel));
      continue;
    }
    const bytes = readFileSync(join(src, rel));
    const name = Buffer.from('accuracy_level');
    let patched = 0;
    for (let at = bytes.indexOf(name); at >= 0; at = bytes.indexOf(name, at + 1)) {
      const i = at + name.length;
      if (bytes[i] === 0x18 && bytes[i + 1] === 0x04) {
        bytes[i + 1] = 0x00;
        patched++;
      }
    }
    if (patched === 0) throw new Error(`${rel}: no accuracy_level 4 attribute to patch`);
    writeFileSync(join(dir, rel), bytes);
  }
  return dir;
}

function decode(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

function topK(v: Float32Array, k: number): number[] {
  return [...v.keys()].sort((a, b) => v[b]! - v[a]!).slice(0, k);
}

function maxAbs(v: Float32Array): number {
  let m = 0;
  for (const x of v) m = Math.max(m, Math.abs(x));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Ids in one side's top-5 but not the other's, unless they are near-ties: within `tol` of the
 * other side's 5th place. Empty when the top-5 sets agree.
 */
function top5Mismatch(a: Float32Array, b: Float32Array, tol: number): number[] {
  const ta = topK(a, 5);
  const tb = topK(b, 5);
  const fifthA = a[ta[4]!]!;
  const fifthB = b[tb[4]!]!;
  return [
    ...ta.filter((id) => !tb.includes(id) && b[id]! < fifthB - tol),
    ...tb.filter((id) => !ta.includes(id) && a[id]! < fifthA - tol),
  ];
}

async function nativeLogits(graph: string, promptIds: number[], steps: number, force?: number[]) {
  const session = await ortNode.InferenceSession.create(graph);
  try {
    return await greedyOrtNode(ortNode, session, promptIds, steps, force ? { force } : {});
  } finally {
    await session.release();
  }
}

for (const backend of ['wasm', 'webgpu'] as const) {
  for (const layout of ['genai', 'web'] as const) {
    test(`logits of the ${layout} layout on ${backend} match onnxruntime-node at every step`, async ({
      page,
    }) => {
      if (backend === 'webgpu') test.setTimeout(300_000);
      const steps = STEPS[backend];
      const promptIds = tok.encode(PROMPT);
      const otherIds = tok.encode(OTHER);
      // Native greedy continuation of the exported graph; its ids are then forced into every
      // engine, so all see identical inputs at every step even where their argmax would differ.
      const exported = await nativeLogits(graphOf(layout), promptIds, steps);
      const force = exported.ids.slice(0, steps - 1);
      const fp32 = await nativeLogits(graphOf(layout, acc0[layout]), promptIds, steps, force);

      await page.goto(server.url);
      await page.waitForFunction(() => '__harness' in window);
      const names = listFiles(layout === 'genai' ? fixture.genai : fixture.web);
      const r = await page.evaluate(
        async ({ base, baseAcc0, names, layout, backend, runs }) => {
          const h = window.__harness;
          const exported = await h.forcedLogits(
            layout,
            backend,
            await h.fetchBlobs(base, names),
            runs,
          );
          const fp32 = await h.forcedLogits(
            layout,
            backend,
            await h.fetchBlobs(baseAcc0, names),
            runs.slice(0, 1),
          );
          return { isolated: h.isolated(), ...exported, fp32: fp32.logits[0]! };
        },
        {
          base: server.modelUrl(layout),
          baseAcc0: server.modelUrl(`${layout}-acc0`),
          names,
          layout,
          backend,
          runs: [
            { promptIds, force },
            { promptIds: otherIds, force: [] },
          ],
        },
      );
      expect(r.isolated).toBe(true);
      expect(r.dtype).toBe(layout === 'genai' ? 'int4' : 'q4');
      if (backend === 'webgpu') expect(r.adapter).not.toBeNull();
      else expect(r.threads).toBeGreaterThan(1);

      const browser = decode(r.logits[0]!);
      const browserFp32 = decode(r.fp32);
      expect(browser.length).toBe(steps * VOCAB);
      expect(browserFp32.length).toBe(steps * VOCAB);
      const rows = Array.from({ length: steps }, (_, s) => {
        const b = browser.subarray(s * VOCAB, (s + 1) * VOCAB);
        const bf = browserFp32.subarray(s * VOCAB, (s + 1) * VOCAB);
        const e = exported.logits[s]!;
        const f = fp32.logits[s]!;
        const scale = maxAbs(e);
        return {
          s,
          b,
          bf,
          e,
          f,
          scale,
          relE: maxAbsDiff(b, e) / scale,
          relF: maxAbsDiff(bf, f) / scale,
        };
      });
      const worstE = Math.max(...rows.map((x) => x.relE));
      const worstF = Math.max(...rows.map((x) => x.relF));
      const summary = `${layout}/${backend}: max |browser - native| / max |logit| over ${steps} steps: ${worstE.toExponential(2)} with the exported graph, ${worstF.toExponential(2)} with fp32 activations on both sides`;
      console.log(summary);
      test.info().annotations.push({ type: 'logits', description: summary });
      for (const { s, b, bf, e, f, scale, relE, relF } of rows) {
        expect(relE, `step ${s} vs the exported graph`).toBeLessThanOrEqual(REL_TOL_EXPORTED);
        expect(relF, `step ${s} vs fp32 activations`).toBeLessThanOrEqual(REL_TOL_FP32);
        expect(
          top5Mismatch(b, e, REL_TOL_EXPORTED * scale),
          `top-5 at step ${s} vs the exported graph`,
        ).toEqual([]);
        expect(
          top5Mismatch(bf, f, REL_TOL_FP32 * scale),
          `top-5 at step ${s} vs fp32 activations`,
        ).toEqual([]);
      }

      // The prompt reaches the output: another prompt moves the step-0 logits far beyond the
      // tolerance (a broken input feed would give the same logits for both).
      const other = decode(r.logits[1]!);
      const first = browser.subarray(0, VOCAB);
      expect(maxAbsDiff(first, other)).toBeGreaterThan(REL_TOL_EXPORTED * maxAbs(first));
    });
  }
}
