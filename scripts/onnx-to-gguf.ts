// Writes a Phi-3 int4 ONNX folder (onnxruntime-genai layout) as a GGUF for llama.cpp's phi3
// architecture, with the int4 blocks repacked as Q4_0 (no requantisation).
//   npx tsx scripts/onnx-to-gguf.ts <genai folder> <output prefix> [--split-mb N]
// Writes <prefix>.gguf, or <prefix>-0000i-of-0000n.gguf splits when the data passes N MB.
import { statSync } from 'node:fs';
import { convertPhi3ToGguf } from '../bench/support/gguf-phi3.ts';

const [folder, prefix] = process.argv
  .slice(2)
  .filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--split-mb');
if (!folder || !prefix) {
  console.error(
    'usage: npx tsx scripts/onnx-to-gguf.ts <genai folder> <output prefix> [--split-mb N]',
  );
  process.exit(2);
}
const at = process.argv.indexOf('--split-mb');
const maxSplitBytes = at > 0 ? Number(process.argv[at + 1]) * 2 ** 20 : Infinity;
const t = performance.now();
const paths = convertPhi3ToGguf(folder, prefix, { maxSplitBytes });
for (const p of paths) console.log(`${p}  ${(statSync(p).size / 2 ** 20).toFixed(1)} MiB`);
console.log(`written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
