import type { Zippable } from 'fflate';
import type { MlflowErrorCode } from '../mlflow/errors.ts';
import type { ZipLimits } from './mlruns-unzip.ts';

/** Messages between the page and `zip-worker.ts`. */
export type ZipWorkerRequest =
  | { id: number; op: 'unzip'; zip: Uint8Array | Blob; limits: Partial<ZipLimits> }
  | { id: number; op: 'zip'; tree: Zippable };

export type ZipWorkerResponse =
  | { id: number; ok: true; files: Map<string, Uint8Array> }
  | { id: number; ok: true; zip: Uint8Array }
  | {
      id: number;
      ok: false;
      mlflow: boolean;
      code: MlflowErrorCode | 'INTERNAL_ERROR';
      message: string;
    };
