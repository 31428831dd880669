import type { Zippable } from 'fflate';
import type { MlflowErrorCode } from '../mlflow/errors.ts';
import type { ZipLimits } from './mlruns-unzip.ts';
import type { MlrunsExportInput, PreparedMlruns, PreparedPart } from './zip-worker-mlruns.ts';

/** Messages between the page and `zip-worker.ts`. */
export type ZipWorkerRequest =
  | { id: number; op: 'unzip'; zip: Uint8Array | Blob; limits: Partial<ZipLimits> }
  | { id: number; op: 'zip'; tree: Zippable }
  | {
      id: number;
      /** Unzip (unless given files), parse the mlruns tree and hash it: see zip-worker-mlruns.ts. */
      op: 'prepare-mlruns';
      source: Uint8Array | Blob | Map<string, Uint8Array>;
      limits: Partial<ZipLimits>;
      registry: boolean;
    }
  | {
      id: number;
      /** Write the mlruns files from stored entities and zip them: see zip-worker-mlruns.ts. */
      op: 'export-mlruns';
      input: MlrunsExportInput;
    };

export type ZipWorkerResponse =
  | { id: number; ok: true; files: Map<string, Uint8Array> }
  | { id: number; ok: true; zip: Uint8Array }
  /** The rest of a prepared tree, after its pieces (`part` messages of the same id). */
  | { id: number; ok: true; prepared: PreparedMlruns }
  | {
      id: number;
      ok: false;
      mlflow: boolean;
      code: MlflowErrorCode | 'INTERNAL_ERROR';
      message: string;
      /** Set when the error was an MlrunsParseError (it names the file and line). */
      parse?: { file: string; line: number | null; detail: string };
    };

/** A piece of a prepared mlruns tree, sent before the `prepared` response of the same id. */
export interface ZipWorkerPart {
  id: number;
  part: PreparedPart;
}

export type ZipWorkerMessage = ZipWorkerResponse | ZipWorkerPart;
