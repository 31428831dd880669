// Model folders on disk as the app's inputs: archive folder files and inference ModelFiles.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FolderFile } from '../../../src/lib/archive/index.ts';
import { normalizePath, type ModelFiles } from '../../../src/lib/inference/engines/files.ts';
import { readTree } from './python.ts';

/** A folder as the files a user picks or drops (paths relative to the folder). */
export function folderFiles(dir: string, prefix = ''): FolderFile[] {
  return [...readTree(dir)].map(([path, bytes]) => ({
    file: new Blob([bytes as BlobPart]),
    path: prefix + path,
  }));
}

/** A model folder on disk for the inference engines (onnxruntime-node opens graphs by path). */
export function diskModelFiles(dir: string): ModelFiles {
  const p = (path: string) => join(dir, normalizePath(path));
  return {
    name: basename(dir),
    has: async (path) => existsSync(p(path)),
    bytes: async (path, onProgress) => {
      const b = new Uint8Array(readFileSync(p(path)));
      onProgress?.(b.length, b.length);
      return b;
    },
    text: async (path) => readFileSync(p(path), 'utf8'),
    response: async (path) => {
      if (!existsSync(p(path))) return undefined;
      const b = readFileSync(p(path));
      return new Response(b, { headers: { 'content-length': String(b.length) } });
    },
    localPath: p,
  };
}
