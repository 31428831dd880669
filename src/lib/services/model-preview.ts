/**
 * Looks inside a picked model zip or folder before anything is stored, so the import dialog can
 * show what it holds and suggest a registered model name. Runs the same checks as the import
 * (archive guards, MLmodel, flavors, input example), so a bad archive is refused at once with
 * the same specific error, and nothing is written.
 */
import { openFolder, openZip, readEntryText, type ArchiveSource } from '../archive/index.ts';
import { inferenceTask, type ServableDescriptor } from '../mlflow/mlmodel.ts';
import { isChatSignature, isPromptToStringSignature } from '../mlflow/signature.ts';
import { checkModelSource } from './model-import.ts';

export interface ModelPreview {
  /** Name to register under unless the user picks another. */
  suggestedName: string;
  flavors: string[];
  /** The LLM task the model declares (`llm/v1/chat`), if any. */
  task?: string;
  /** `chat` (messages in), `prompt` ({prompt} -> string), `other`, or `none` (no signature). */
  signature: 'chat' | 'prompt' | 'other' | 'none';
  servable: ServableDescriptor | null;
  runId?: string;
  fileCount: number;
  totalSize: number;
}

const BAD_NAME_CHARS = /[/\\%]+/g;

function cleanName(s: string | undefined): string | undefined {
  const t = s?.replace(BAD_NAME_CHARS, '-').trim();
  return t ? t.slice(0, 256) : undefined;
}

function stem(fileName: string): string {
  return fileName.replace(/\.zip$/i, '');
}

async function preview(src: ArchiveSource, sourceName: string): Promise<ModelPreview> {
  const checked = await checkModelSource(src);
  const { mlmodel } = checked;
  // A model downloaded from a registry carries its registered name (registered_model_meta).
  let metaName: string | undefined;
  const meta = checked.files.find((f) => f.path === 'registered_model_meta');
  if (meta && meta.entry.size < 4096) {
    const m = /^model_name:\s*(.+)$/m.exec(await readEntryText(meta.entry));
    metaName = m?.[1]?.trim().replace(/^['"]|['"]$/g, '');
  }
  // MLflow 2.x writes the run-relative artifact path (`phi3-mlflow-model`); 3.x writes a URI.
  const ap = mlmodel.artifactPath;
  const artifactName =
    typeof ap === 'string' && ap && !ap.includes(':') ? ap.split('/').pop() : undefined;
  const rootName = checked.root.replace(/\/$/, '').split('/').pop();
  const suggestedName =
    cleanName(metaName) ??
    cleanName(artifactName && artifactName !== 'model' ? artifactName : undefined) ??
    cleanName(rootName) ??
    cleanName(stem(sourceName)) ??
    cleanName(artifactName) ??
    'model';
  const sig = mlmodel.signature;
  const p: ModelPreview = {
    suggestedName,
    flavors: Object.keys(mlmodel.flavors),
    signature: !sig
      ? 'none'
      : isChatSignature(sig)
        ? 'chat'
        : isPromptToStringSignature(sig)
          ? 'prompt'
          : 'other',
    servable: checked.servable,
    fileCount: checked.files.length,
    totalSize: checked.totalSize,
  };
  const task = inferenceTask(mlmodel);
  if (task) p.task = task;
  if (mlmodel.runId) p.runId = mlmodel.runId;
  return p;
}

/** Checks a model zip and describes it; throws the import's own errors when it is refused. */
export async function previewModelZip(file: File): Promise<ModelPreview> {
  return preview(await openZip(file, { fileName: file.name }), file.name);
}

/** Checks a picked folder (Files with webkitRelativePath) and describes it. */
export async function previewModelFolder(files: File[]): Promise<ModelPreview> {
  const first = files[0] as (File & { webkitRelativePath?: string }) | undefined;
  const folder = first?.webkitRelativePath?.split('/')[0] ?? 'model';
  return preview(openFolder(files), folder);
}
