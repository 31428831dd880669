// Builds the two seed model shapes as MLflow model zips on disk, for the model registry browser
// tests: (1) a transformers model logged with task="llm/v1/chat" whose weights are the tiny
// Phi-3 fixture's web export, (2) a python_function wrapper whose `artifacts` hold the tiny
// fixture's onnxruntime-genai folder, signature {prompt} -> string. The MLmodel files were
// written by PyYAML's safe_dump, as MLflow's Model.save writes them.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { ensureTinyPhi3 } from '../../helpers/tiny-phi3.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, '..', '..', '..', 'test-results', 'model-zips');

export type ModelFiles = Map<string, Uint8Array>;

export interface BuiltZip {
  /** Path of the zip on disk (for page.setInputFiles). */
  path: string;
  /** Every file of the model folder, path -> bytes. */
  files: ModelFiles;
}

const text = (s: string) => new TextEncoder().encode(s);

const CONDA = `channels:
- conda-forge
dependencies:
- python=3.10.14
- pip<=24.0
- pip:
  - mlflow==2.19.0
  - torch
  - onnxruntime_genai
  - numpy
name: mlflow-env
`;
const PYTHON_ENV = `python: 3.10.14
build_dependencies:
- pip==24.0
- setuptools==69.5.1
- wheel==0.43.0
dependencies:
- -r requirements.txt
`;

function addFolder(files: ModelFiles, from: string, to: string, skip: (rel: string) => boolean) {
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const rel = relative(from, full).split('\\').join('/');
      if (skip(rel)) continue;
      if (statSync(full).isDirectory()) walk(full);
      else files.set(`${to}/${rel}`, new Uint8Array(readFileSync(full)));
    }
  };
  walk(from);
}

function writeZip(name: string, files: ModelFiles): string {
  mkdirSync(OUT, { recursive: true });
  const z: Zippable = {};
  for (const [p, b] of files) z[p] = [b, { level: p.endsWith('.json') ? 6 : 0 }];
  const path = join(OUT, name);
  writeFileSync(path, zipSync(z));
  return path;
}

/** Seed shape 1: transformers flavor, task llm/v1/chat, ONNX web weights in model/. */
export async function buildChatModelZip(): Promise<BuiltZip> {
  const tiny = await ensureTinyPhi3();
  const files: ModelFiles = new Map();
  files.set(
    'MLmodel',
    new Uint8Array(readFileSync(join(HERE, 'models', 'transformers-chat.MLmodel'))),
  );
  files.set('conda.yaml', text(CONDA));
  files.set('python_env.yaml', text(PYTHON_ENV));
  files.set('requirements.txt', text('mlflow==2.19.0\ntransformers==4.44.2\ntorch==2.3.1'));
  // Only the q4 graph: the q4f16 one doubles the size and adds nothing to these tests.
  addFolder(
    files,
    tiny.web,
    'model',
    (rel) => rel.startsWith('onnx/model_q4f16') || rel.startsWith('.'),
  );
  for (const f of [
    'tokenizer.json',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'added_tokens.json',
  ]) {
    files.set(`components/tokenizer/${f}`, new Uint8Array(readFileSync(join(tiny.web, f))));
  }
  return { path: writeZip('phi3-chat.zip', files), files };
}

/** Seed shape 2: python_function wrapper, genai folder in artifacts/, {prompt} -> string. */
export async function buildGenaiModelZip(): Promise<BuiltZip> {
  const tiny = await ensureTinyPhi3();
  const files: ModelFiles = new Map();
  files.set('MLmodel', new Uint8Array(readFileSync(join(HERE, 'models', 'pyfunc-genai.MLmodel'))));
  files.set('conda.yaml', text(CONDA));
  files.set('python_env.yaml', text(PYTHON_ENV));
  files.set('requirements.txt', text('mlflow==2.19.0\ntorch\nonnxruntime_genai\nnumpy'));
  // Stand-in for the cloudpickled wrapper class: the browser never unpickles it.
  files.set('python_model.pkl', Uint8Array.from([0x80, 0x05, 0x95, 0x00, 0x2e]));
  const prompt = '<|user|>\nWhat is MLflow?<|end|>\n<|assistant|>\n';
  files.set('input_example.json', text(JSON.stringify({ prompt }).replace(/":"/g, '": "')));
  files.set('serving_input_example.json', text(JSON.stringify({ inputs: { prompt } }, null, 2)));
  addFolder(files, tiny.genai, 'artifacts/cpu-int4-rtn-block-32-acc-level-4', (rel) =>
    rel.startsWith('.'),
  );
  return { path: writeZip('phi3-genai.zip', files), files };
}

/** A zip that tries to write outside its folder ("zip slip"), next to a valid MLmodel. */
export function buildTraversalZip(): string {
  const files: ModelFiles = new Map();
  files.set('MLmodel', new Uint8Array(readFileSync(join(HERE, 'models', 'pyfunc-genai.MLmodel'))));
  files.set('../../evil.txt', text('outside'));
  return writeZip('traversal.zip', files);
}

/** A small onnx-flavor model (the graph bytes are a stand-in: nothing here runs it). */
export function buildOnnxModelZip(fileName = 'iris-onnx.zip'): BuiltZip {
  const files: ModelFiles = new Map();
  files.set('MLmodel', new Uint8Array(readFileSync(join(HERE, 'models', 'onnx-iris.MLmodel'))));
  files.set('conda.yaml', text(CONDA));
  files.set('python_env.yaml', text(PYTHON_ENV));
  files.set('requirements.txt', text('mlflow==2.14.3\nonnx==1.16.1\nonnxruntime'));
  files.set(
    'model.onnx',
    Uint8Array.from({ length: 256 }, (_, i) => (i * 31) % 251),
  );
  return { path: writeZip(fileName, files), files };
}

/** Files that are refused, each for its own reason. */
export function buildBadArchives(): { notAZip: string; truncated: string; noMLmodel: string } {
  mkdirSync(OUT, { recursive: true });
  const notAZip = join(OUT, 'not-a-zip.zip');
  writeFileSync(notAZip, 'This is a text file, not a zip archive.\n');
  const good = readFileSync(buildOnnxModelZip('for-truncation.zip').path);
  const truncated = join(OUT, 'truncated.zip');
  writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
  const noMLmodel = writeZip(
    'no-mlmodel.zip',
    new Map([
      ['model.onnx', Uint8Array.from([1, 2, 3])],
      ['conda.yaml', text(CONDA)],
    ]),
  );
  return { notAZip, truncated, noMLmodel };
}

/** Unpacks a zip into a fresh folder named `name` (for importing a model as a folder). */
export function extractZip(path: string, name: string): string {
  const dir = join(OUT, 'folders', name);
  rmSync(dir, { recursive: true, force: true });
  for (const [p, bytes] of readZip(path)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), bytes);
  }
  return dir;
}

/** Reads a zip from disk into path -> bytes (directories left out). */
export function readZip(path: string): ModelFiles {
  const out: ModelFiles = new Map();
  for (const [p, b] of Object.entries(unzipSync(new Uint8Array(readFileSync(path))))) {
    if (!p.endsWith('/')) out.set(p, b);
  }
  return out;
}

/** Paths whose bytes differ or that exist on one side only; empty when the folders are equal. */
export function diffFiles(a: ModelFiles, b: ModelFiles): string[] {
  const out: string[] = [];
  for (const [p, bytes] of a) {
    const other = b.get(p);
    if (!other) out.push(`missing: ${p}`);
    else if (Buffer.compare(Buffer.from(bytes), Buffer.from(other)) !== 0)
      out.push(`differs: ${p}`);
  }
  for (const p of b.keys()) if (!a.has(p)) out.push(`extra: ${p}`);
  return out;
}
