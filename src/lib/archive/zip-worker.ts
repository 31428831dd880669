/// <reference lib="webworker" />
/**
 * A module worker (same origin, so the CSP's `worker-src 'self'` allows it) that inflates and
 * deflates whole zips off the main thread: the guarded mlruns unzip and fflate's zipSync, and
 * parses an mlruns tree right after its unzip (zip-worker-mlruns.ts).
 */
import { zipSync } from 'fflate';
import { MlflowError } from '../mlflow/errors.ts';
import { MlrunsParseError } from '../mlflow/mlruns/index.ts';
import { unzipGuardedSync } from './mlruns-unzip.ts';
import {
  buildMlrunsFiles,
  mlrunsZippable,
  prepareMlruns,
  preparedArrays,
  splitPrepared,
} from './zip-worker-mlruns.ts';
import type { ZipWorkerPart, ZipWorkerRequest, ZipWorkerResponse } from './zip-worker-protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function transferables(arrays: Iterable<Uint8Array>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const a of arrays) if (a.buffer instanceof ArrayBuffer) seen.add(a.buffer);
  return [...seen];
}

scope.onmessage = async (ev: MessageEvent<ZipWorkerRequest>) => {
  const req = ev.data;
  try {
    if (req.op === 'unzip') {
      const bytes = req.zip instanceof Blob ? new Uint8Array(await req.zip.arrayBuffer()) : req.zip;
      const files = unzipGuardedSync(bytes, req.limits);
      const res: ZipWorkerResponse = { id: req.id, ok: true, files };
      // Stored entries may be views of the zip itself: each buffer is transferred once.
      scope.postMessage(res, transferables(files.values()));
    } else if (req.op === 'prepare-mlruns') {
      const src = req.source;
      const files =
        src instanceof Map
          ? src
          : unzipGuardedSync(
              src instanceof Blob ? new Uint8Array(await src.arrayBuffer()) : src,
              req.limits,
            );
      const { rest, parts } = splitPrepared(await prepareMlruns(files, { registry: req.registry }));
      for (const part of parts) {
        const msg: ZipWorkerPart = { id: req.id, part };
        scope.postMessage(msg, transferables(preparedArrays(part)));
      }
      const res: ZipWorkerResponse = { id: req.id, ok: true, prepared: rest };
      scope.postMessage(res, transferables(preparedArrays(rest)));
    } else if (req.op === 'export-mlruns') {
      const zip = zipSync(mlrunsZippable(await buildMlrunsFiles(req.input)));
      const res: ZipWorkerResponse = { id: req.id, ok: true, zip };
      scope.postMessage(res, [zip.buffer as ArrayBuffer]);
    } else {
      const zip = zipSync(req.tree);
      const res: ZipWorkerResponse = { id: req.id, ok: true, zip };
      scope.postMessage(res, [zip.buffer as ArrayBuffer]);
    }
  } catch (e) {
    const res: ZipWorkerResponse = {
      id: req.id,
      ok: false,
      mlflow: e instanceof MlflowError,
      code: e instanceof MlflowError ? e.errorCode : 'INTERNAL_ERROR',
      message: e instanceof Error ? e.message : String(e),
      ...(e instanceof MlrunsParseError
        ? { parse: { file: e.file, line: e.line, detail: e.detail } }
        : {}),
    };
    scope.postMessage(res);
  }
};
