import { InferenceError } from '../protocol.ts';
import { checkLazyFileUsed, lazyExternalFile, type LazyExternalFile } from './external-data.ts';
import type { ModelFiles } from './files.ts';
import type { OrtRuntime, OrtSessionLike, OrtTensorLike, SessionRequest } from './ort-causal-lm.ts';

/** The shape shared by onnxruntime-web's and onnxruntime-node's module objects. */
export interface OrtModule {
  InferenceSession: {
    create(model: string | Uint8Array, options?: object): Promise<OrtSessionLike>;
  };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensorLike;
}

export interface OrtRuntimeOptions {
  backend: OrtRuntime['backend'];
  threads: number;
  /** onnxruntime execution providers, e.g. ['webgpu'] or ['wasm'] or ['cpu']. */
  executionProviders: string[];
  /** Open graphs by file path when the files are on a local disk (onnxruntime-node). */
  preferPaths?: boolean;
  sessionOptions?: object;
  /**
   * How external data reaches onnxruntime. `on-demand` (the default where the files allow it):
   * onnxruntime reads each tensor's range straight from the stored file while it builds the
   * session, so JS never holds the whole file. `whole-file`: the file is read into one buffer first.
   */
  weightsReading?: WeightsReading;
}

export type WeightsReading = 'on-demand' | 'whole-file';

function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i + 1);
}

/** A session factory over one onnxruntime module and one model folder. */
export function createOrtRuntime(
  ort: OrtModule,
  files: ModelFiles,
  o: OrtRuntimeOptions,
): OrtRuntime {
  return {
    backend: o.backend,
    threads: o.threads,
    tensor: (type, data, dims) => new ort.Tensor(type, data, dims),
    async createSession(req: SessionRequest): Promise<OrtSessionLike> {
      const options: Record<string, unknown> = {
        executionProviders: o.executionProviders,
        graphOptimizationLevel: 'all',
        ...o.sessionOptions,
      };
      if (req.gpuOutputs?.length) {
        options.preferredOutputLocation = Object.fromEntries(
          req.gpuOutputs.map((n) => [n, 'gpu-buffer']),
        );
      }
      const lazy: { file: string; size: number; mounted: LazyExternalFile }[] = [];
      try {
        if (o.preferPaths && files.localPath) {
          return await ort.InferenceSession.create(files.localPath(req.graph), options);
        }
        const progress = (file: string) =>
          req.onProgress
            ? (loaded: number, total: number) => req.onProgress!(file, loaded, total)
            : undefined;
        const graph = await files.bytes(req.graph, progress(req.graph));
        if (req.externalData.length) {
          // The path must be the location written inside the graph: relative to the graph's folder.
          const base = dirname(req.graph);
          const external: { path: string; data: Uint8Array }[] = [];
          for (const f of req.externalData) {
            const ranged =
              o.weightsReading !== 'whole-file' ? await files.rangeReader?.(f) : undefined;
            if (ranged) {
              const onBytes = progress(f);
              let loaded = 0;
              const mounted = lazyExternalFile(f, ranged.size, (start, end) => {
                const bytes = ranged.read(start, end);
                loaded += bytes.length;
                onBytes?.(loaded, ranged.size);
                return bytes;
              });
              lazy.push({ file: f, size: ranged.size, mounted });
              external.push({ path: f.slice(base.length), data: mounted.data });
            } else {
              external.push({
                path: f.slice(base.length),
                data: await files.bytes(f, progress(f)),
              });
            }
          }
          options.externalData = external;
        }
        const session = await ort.InferenceSession.create(graph, options);
        try {
          for (const l of lazy) checkLazyFileUsed(l.file, l.size, l.mounted.stats);
        } catch (e) {
          await session.release();
          throw e;
        }
        return session;
      } catch (e) {
        if (e instanceof InferenceError) throw e;
        const misuse = lazy.find((l) => l.mounted.stats.misuse)?.mounted.stats.misuse;
        throw new InferenceError(
          isOutOfMemory(e) ? 'oom' : 'load-failed',
          `${files.name}: onnxruntime could not open ${req.graph} on ${o.backend}: ${errorText(e)}` +
            (misuse ? ` (${misuse})` : ''),
          { cause: e },
        );
      }
    },
  };
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'number') return `onnxruntime error code ${e}`;
  return String(e);
}

/** wasm allocation failures and WebGPU buffer failures both mean the model does not fit. */
export function isOutOfMemory(e: unknown): boolean {
  const t = errorText(e);
  return (
    e instanceof RangeError ||
    /out of memory|Out of bounds memory|Array buffer allocation failed|bad_alloc|Cannot enlarge memory|OOM|failed to allocate/i.test(
      t,
    )
  );
}
