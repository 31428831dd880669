/**
 * Serving a registered model version in the Playground, and autolog: every chat or prompt
 * session is an MLflow run (params, per-answer metrics with steps, the conversation and each
 * request/response pair as artifacts).
 */
import { getDatabase, type AnyDB } from '../store/db.ts';
import { readBlob } from '../store/blobs.ts';
import { weightsMissing } from './storage-usage.ts';
import { listModelFiles, readModelFileText } from '../store/model-files.ts';
import {
  getModelVersionRecord,
  listModelVersionRecords,
  listRegisteredModelRecords,
  type ModelVersionRecord,
} from '../store/registry.ts';
import { parseMLmodel } from '../mlflow/mlmodel.ts';
import type { ColSpec, DataType, Signature } from '../mlflow/signature.ts';
import { validateRequest } from '../mlflow/signature-validate.ts';
import type { InferenceClient } from '../inference/client.ts';
import type {
  BackendPreference,
  ChatMessage,
  GenerationParams,
  ProgressMessage,
  ReadyMessage,
} from '../inference/protocol.ts';
import {
  CHAT_DEFAULT_MAX_TOKENS,
  PROMPT_WRAPPER_DEFAULTS,
  toChatCompletion,
} from '../inference/adapters.ts';
import type { GenerationHandle, TextGenerator } from '../inference/handle.ts';
import { checkWasmFit } from '../inference/wasm-fit.ts';
import type { TrackingClient } from './tracking.ts';
import { getTracking } from './app.ts';
import {
  chatHistory,
  conversationFromJson,
  conversationToJson,
  newId,
  type ConversationRecord,
  type GenerationSettings,
  type StoredMessage,
} from './conversations.ts';
import * as convRepo from '../store/conversations.ts';

/** `mlflow.source.name` of every Playground run. */
export const PLAYGROUND_SOURCE = 'tabflow-playground';
export const CONVERSATION_ARTIFACT = 'conversation.json';
export const COMPLETIONS_DIR = 'completions';

// ---------------------------------------------------------------- servable versions

export interface ServableVersion {
  name: string;
  version: string;
  versionId: string;
  kind: 'chat' | 'prompt';
  layout: 'web' | 'genai';
  size: number;
  description: string;
  record: ModelVersionRecord;
}

function servableOf(rec: ModelVersionRecord): ServableVersion | null {
  const s = rec.servable;
  if (!s || (s.kind !== 'chat' && s.kind !== 'prompt')) return null;
  if (s.layout !== 'web' && s.layout !== 'genai') return null;
  return {
    name: rec.name,
    version: String(rec.version),
    versionId: rec.id,
    kind: s.kind,
    layout: s.layout,
    size: rec.size,
    description: rec.description,
    record: rec,
  };
}

/** Every model version the Playground can serve, newest model update first. */
export async function listServableVersions(db: AnyDB): Promise<ServableVersion[]> {
  const models = await listRegisteredModelRecords(db);
  models.sort((a, b) => b.lastUpdatedTimestamp - a.lastUpdatedTimestamp);
  const out: ServableVersion[] = [];
  for (const m of models) {
    for (const v of await listModelVersionRecords(db, m.name)) {
      const s = servableOf(v);
      if (s) out.push(s);
    }
  }
  return out;
}

export async function getServableVersion(
  db: AnyDB,
  name: string,
  version: string,
): Promise<ServableVersion> {
  const rec = await getModelVersionRecord(db, name, version);
  const s = servableOf(rec);
  if (!s) {
    throw new Error(
      `Model ${name} version ${version} cannot be served in the browser: it has no ONNX weights in the web or onnxruntime-genai layout.`,
    );
  }
  return s;
}

const baseName = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/**
 * The files the inference worker needs, keyed relative to the weights folder (`config.json`,
 * `onnx/model_q4.onnx`, `genai_config.json`, ...). Tokenizer files kept elsewhere in the model
 * (transformers' `components/tokenizer/`) are mapped next to the weights. Blobs are lazy.
 */
export async function modelFilesForServing(
  db: AnyDB,
  v: ServableVersion,
): Promise<Record<string, Blob>> {
  const s = v.record.servable!;
  const records = await listModelFiles(db, v.versionId);
  const byPath = new Map(records.map((r) => [r.path, r]));
  const out: Record<string, Blob> = {};
  for (const r of records) {
    if (r.path.startsWith(s.root)) out[r.path.slice(s.root.length)] = await readBlob(db, r.blobId);
  }
  const sidecars = [
    s.files.tokenizer,
    s.files.tokenizerConfig,
    s.files.specialTokensMap,
    s.files.addedTokens,
    s.files.config,
    s.files.generationConfig,
    s.files.genaiConfig,
  ];
  for (const p of sidecars) {
    if (!p || p.startsWith(s.root)) continue;
    const r = byPath.get(p);
    if (r && !(baseName(p) in out)) out[baseName(p)] = await readBlob(db, r.blobId);
  }
  return out;
}

export async function readModelSignature(db: AnyDB, v: ServableVersion): Promise<Signature | null> {
  try {
    const text = await readModelFileText(db, v.versionId, 'MLmodel');
    return parseMLmodel(text).signature ?? null;
  } catch {
    return null;
  }
}

/** The chat template of the model's tokenizer (tokenizer_config.json), or Phi-3's format. */
export async function readChatTemplate(db: AnyDB, v: ServableVersion): Promise<string> {
  const { PHI3_CHAT_TEMPLATE } = await import('../inference/tokenizer.ts');
  const path = v.record.servable?.files.tokenizerConfig;
  if (!path) return PHI3_CHAT_TEMPLATE;
  try {
    const cfg = JSON.parse(await readModelFileText(db, v.versionId, path)) as {
      chat_template?: unknown;
    };
    if (typeof cfg.chat_template === 'string') return cfg.chat_template;
    if (Array.isArray(cfg.chat_template)) {
      const named = (cfg.chat_template as { name?: string; template?: string }[]).find(
        (t) => t?.name === 'default',
      );
      if (typeof named?.template === 'string') return named.template;
    }
  } catch {
    // fall back to the Phi-3 format below
  }
  return PHI3_CHAT_TEMPLATE;
}

/** Renders a chat template for a raw prompt, with the generation prompt appended. */
export async function renderChatTemplate(
  template: string,
  messages: ChatMessage[],
): Promise<string> {
  const { Template } = await import('@huggingface/jinja');
  return new Template(template).render({
    messages,
    add_generation_prompt: true,
    bos_token: '',
    eos_token: '<|endoftext|>',
  });
}

export interface LoadedModel {
  target: ServableVersion;
  ready: ReadyMessage;
  signature: Signature | null;
}

/** The version's weight files are gone (deleted in Settings to free space, or never finished). */
export class WeightsMissingError extends Error {
  override name = 'WeightsMissingError';
  constructor(
    readonly modelName: string,
    readonly version: string,
  ) {
    super(
      `The weights of ${modelName} v${version} were deleted to free space — re-import the model zip or download it again.`,
    );
  }
}

/**
 * Reads a version's files from the store and loads them into the inference worker. Throws
 * WeightsMissingError, before anything is sent to the worker, when its weights were deleted.
 */
export async function loadModelVersion(
  client: InferenceClient,
  db: AnyDB,
  target: ServableVersion,
  backend: BackendPreference,
  onProgress?: (p: ProgressMessage) => void,
): Promise<LoadedModel> {
  if (await weightsMissing(db, target.versionId)) {
    throw new WeightsMissingError(target.name, target.version);
  }
  // The CPU engines hold every weight in wasm32 memory: refuse before reading gigabytes.
  if (backend === 'wasm' || backend === 'cpu' || backend === 'ort-wasm') {
    checkWasmFit({ weightBytes: target.size, minKvBytes: 0 });
  }
  const files = await modelFilesForServing(db, target);
  const ready = await client.load(
    {
      source: { kind: 'files', files },
      layout: target.layout,
      backend,
      dtype: 'auto',
      modelName: `${target.name}/${target.version}`,
    },
    onProgress,
  );
  return { target, ready, signature: await readModelSignature(db, target) };
}

/** A readable description of where the model runs: WebGPU adapter or WASM threads. */
export function describeBackend(ready: ReadyMessage): string {
  if (ready.backend === 'webgpu') {
    const a = ready.adapter;
    const name = a ? [a.vendor, a.architecture].filter(Boolean).join(' ') || a.description : '';
    return `WebGPU${name ? ` · ${name}` : ''}${a?.isFallbackAdapter ? ' (software fallback)' : ''}`;
  }
  const base = `WASM · ${ready.threads} thread${ready.threads === 1 ? '' : 's'}${ready.crossOriginIsolated ? '' : ' (not isolated)'}`;
  const engine =
    ready.engine === 'cpu-decoder'
      ? ` · CPU decoder (${ready.cpu?.variant === 'relaxed' ? 'relaxed SIMD' : 'SIMD128'})`
      : ready.engine === 'onnxruntime-wasm'
        ? ` · onnxruntime${ready.cpuRefusal ? ` (the CPU decoder refused: ${ready.cpuRefusal})` : ''}`
        : '';
  return `${base}${engine}${ready.singleThreadReason ? ` · ${ready.singleThreadReason}` : ''}`;
}

// ---------------------------------------------------------------- settings

export interface SettingsCheck {
  /** Field -> what is wrong; a request is not sent while any error remains. */
  errors: Partial<Record<keyof GenerationSettings | 'params', string>>;
  /** Field -> a note (e.g. the model's signature does not declare it). */
  warnings: Partial<Record<keyof GenerationSettings, string>>;
}

const NUMERIC: Record<
  Exclude<keyof GenerationSettings, 'stop'>,
  { integer: boolean; min: number; max?: number; minExclusive?: boolean }
> = {
  temperature: { integer: false, min: 0, max: 2 },
  top_p: { integer: false, min: 0, max: 1, minExclusive: true },
  top_k: { integer: true, min: 0 },
  max_tokens: { integer: true, min: 1, max: 8192 },
  seed: { integer: true, min: 0 },
  n: { integer: true, min: 1, max: 8 },
};

const SIGNATURE_TYPES: Partial<Record<DataType, 'number' | 'integer'>> = {
  double: 'number',
  float: 'number',
  long: 'integer',
  integer: 'integer',
};

/**
 * Checks generation settings: ranges, then the model's signature (a column of the same name must
 * have a matching type; a params schema is enforced as MLflow's pyfunc enforces it).
 */
export function validateSettings(
  settings: GenerationSettings,
  signature: Signature | null,
): SettingsCheck {
  const check: SettingsCheck = { errors: {}, warnings: {} };
  for (const [key, rule] of Object.entries(NUMERIC) as [
    keyof typeof NUMERIC,
    (typeof NUMERIC)[keyof typeof NUMERIC],
  ][]) {
    const v = settings[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v)) check.errors[key] = 'must be a number';
    else if (rule.integer && !Number.isInteger(v)) check.errors[key] = 'must be a whole number';
    else if (rule.minExclusive ? v <= rule.min : v < rule.min)
      check.errors[key] = `must be ${rule.minExclusive ? 'above' : 'at least'} ${rule.min}`;
    else if (rule.max !== undefined && v > rule.max)
      check.errors[key] = `must be at most ${rule.max}`;
  }
  if (settings.stop) {
    if (settings.stop.length > 4) check.errors.stop = 'at most 4 stop sequences';
    else if (settings.stop.some((s) => s.length === 0)) check.errors.stop = 'empty stop sequence';
  }
  const columns = (signature?.inputs ?? []).filter(
    (s): s is ColSpec => s.kind === 'column' && typeof s.name === 'string',
  );
  const chatColumns = columns.some((c) => c.name === 'messages');
  if (chatColumns) {
    for (const key of Object.keys(settings) as (keyof GenerationSettings)[]) {
      if (settings[key] === undefined || check.errors[key]) continue;
      const col = columns.find((c) => c.name === key);
      if (!col) {
        check.warnings[key] = "not in the model's signature (served here, ignored by MLflow)";
        continue;
      }
      const want = SIGNATURE_TYPES[col.type.type as DataType];
      const v = settings[key];
      if (want === 'integer' && typeof v === 'number' && !Number.isInteger(v))
        check.errors[key] = `the signature declares ${col.type.type}: a whole number`;
    }
  }
  if (signature?.params && signature.params.length > 0) {
    const given: Record<string, unknown> = {};
    for (const p of signature.params) {
      const v = settings[p.name as keyof GenerationSettings];
      if (v !== undefined) given[p.name] = v;
    }
    try {
      validateRequest({ inputs: null, outputs: null, params: signature.params }, {}, given, {
        unknownParams: 'ignore',
      });
    } catch (e) {
      check.errors.params = (e as Error).message;
    }
  }
  return check;
}

/** The generation params of a request: chat defaults, or the prompt wrapper's. */
export function toGenerationParams(
  settings: GenerationSettings,
  mode: 'chat' | 'prompt',
): GenerationParams {
  const p: GenerationParams =
    mode === 'prompt' ? { ...PROMPT_WRAPPER_DEFAULTS } : { max_tokens: CHAT_DEFAULT_MAX_TOKENS };
  for (const [k, v] of Object.entries(settings)) {
    if (v === undefined) continue;
    if (k === 'stop' && Array.isArray(v) && v.length === 0) continue;
    (p as Record<string, unknown>)[k] = v;
  }
  return p;
}

/** The llm/v1/chat request body an answer was generated from (what MLflow would be sent). */
export function chatRequestBody(
  messages: ChatMessage[],
  settings: GenerationSettings,
): Record<string, unknown> {
  const body: Record<string, unknown> = { messages };
  for (const [k, v] of Object.entries(toGenerationParams(settings, 'chat'))) {
    if (v !== undefined) body[k] = v;
  }
  return body;
}

// ---------------------------------------------------------------- answering

export interface AnswerOptions {
  /** The model name in chat.completion responses. */
  modelName: string;
  /** Prompt sessions: the raw prompt (chat sessions use the conversation's messages). */
  prompt?: string;
  /** Chat sessions: answer from the messages before this index (regenerate, edit). */
  uptoIndex?: number;
  onHandle?: (h: GenerationHandle) => void;
  /** Called with the text so far (choice 0) as tokens stream in. */
  onText?: (text: string, tokenCount: number, tokensPerSecond: number) => void;
}

/**
 * Generates one answer and returns it as a stored message with its request, raw response
 * (chat.completion, or the string a {prompt} model returns) and measurements.
 */
export async function generateAnswer(
  generator: TextGenerator,
  conv: ConversationRecord,
  opts: AnswerOptions,
): Promise<StoredMessage> {
  const params = toGenerationParams(conv.settings, conv.mode);
  let handle: GenerationHandle;
  let request: unknown;
  if (conv.mode === 'chat') {
    const messages = chatHistory(conv, opts.uptoIndex);
    request = chatRequestBody(messages, conv.settings);
    handle = generator.generate({ kind: 'chat', messages }, params);
  } else {
    const prompt = opts.prompt ?? '';
    request = { inputs: { prompt: [prompt] }, params };
    handle = generator.generate({ kind: 'prompt', prompt }, { ...params, n: 1 });
  }
  opts.onHandle?.(handle);
  let text = '';
  for await (const u of handle) {
    if (u.index !== 0) continue;
    text += u.text;
    opts.onText?.(text, u.tokenCount, u.tokensPerSecond);
  }
  const done = await handle.result;
  const answer: StoredMessage = {
    id: newId(),
    role: 'assistant',
    content: done.text,
    createdAt: Date.now(),
    stats: {
      promptTokens: done.usage.prompt_tokens,
      completionTokens: done.usage.completion_tokens,
      ttftMs: Math.round(done.timings.ttftMs * 10) / 10,
      tokensPerSecond: Math.round(done.timings.tokensPerSecond * 100) / 100,
      totalMs: Math.round(done.timings.totalMs),
    },
    finishReason: done.finishReason,
    request,
    response: conv.mode === 'chat' ? toChatCompletion(done, { model: opts.modelName }) : done.text,
  };
  if (done.interrupted) answer.interrupted = true;
  if (done.choices.length > 1) answer.alternatives = done.choices.slice(1).map((c) => c.text);
  return answer;
}

// ---------------------------------------------------------------- autolog

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface SessionContext {
  model: { name: string; version: string };
  backend: string;
  /** Experiment name; defaults to the model's name. */
  experimentName?: string;
}

/** The params a Playground run is logged with (MLflow params are strings and immutable). */
export async function sessionParams(
  conv: Pick<ConversationRecord, 'mode' | 'systemPrompt' | 'settings'>,
  ctx: SessionContext,
): Promise<Record<string, string>> {
  const p: Record<string, string> = {
    model_name: ctx.model.name,
    model_version: ctx.model.version,
    backend: ctx.backend,
    mode: conv.mode,
    system_prompt_sha256: await sha256Hex(conv.systemPrompt),
  };
  const gen = toGenerationParams(conv.settings, conv.mode);
  for (const [k, v] of Object.entries(gen)) {
    if (v === undefined) continue;
    p[k] = Array.isArray(v) ? JSON.stringify(v) : String(v);
  }
  return p;
}

const pad = (n: number) => String(n).padStart(4, '0');

/**
 * Logs a conversation as runs. One run per (model, backend, settings): when any of them changes
 * mid-conversation a new run starts, because MLflow params cannot change once logged.
 */
export class PlaygroundAutolog {
  constructor(private readonly tracking: TrackingClient) {}

  private async experimentId(name: string): Promise<string> {
    const existing = await this.tracking.getExperimentByName(name);
    if (existing?.lifecycleStage === 'active') return existing.experimentId;
    if (existing) return this.experimentId(`${name} (playground)`);
    return this.tracking.createExperiment(name, {
      tags: { 'mlflow.note.content': 'Playground sessions' },
    });
  }

  /** The run the next answer goes to; starts one (and records it on `conv`) when needed. */
  async ensureRun(conv: ConversationRecord, ctx: SessionContext): Promise<string> {
    const params = await sessionParams(conv, ctx);
    if (conv.runId) {
      try {
        const run = await this.tracking.getRun(conv.runId);
        const same =
          run.info.lifecycleStage === 'active' &&
          Object.keys(params).length === Object.keys(run.params).length &&
          Object.entries(params).every(([k, v]) => run.params[k] === v);
        if (same) return conv.runId;
      } catch {
        // the run was removed: start a new one
      }
    }
    const experimentId = await this.experimentId(ctx.experimentName?.trim() || ctx.model.name);
    const info = await this.tracking.startRun({
      experimentId,
      runName: `${conv.mode}-${conv.title}`.slice(0, 120),
      sourceName: PLAYGROUND_SOURCE,
      tags: {
        'tabflow.playground.conversation_id': conv.id,
        'tabflow.playground.mode': conv.mode,
        'tabflow.model': `models:/${ctx.model.name}/${ctx.model.version}`,
      },
    });
    await this.tracking.logParams(info.runId, params);
    conv.runId = info.runId;
    conv.experimentId = experimentId;
    if (!conv.runIds.includes(info.runId)) conv.runIds.push(info.runId);
    return info.runId;
  }

  /** Logs one answer: metrics at the next step, its request/response pair, the conversation. */
  async logAnswer(
    conv: ConversationRecord,
    answer: StoredMessage,
    ctx: SessionContext,
  ): Promise<void> {
    const runId = await this.ensureRun(conv, ctx);
    // Steps only grow: a regenerated answer gets a new step, it does not overwrite the old one.
    const step = (await this.tracking.listArtifacts(runId, COMPLETIONS_DIR)).length;
    answer.runId = runId;
    answer.step = step;
    const s = answer.stats;
    if (s) {
      await this.tracking.logMetrics(
        runId,
        {
          tokens_per_second: s.tokensPerSecond,
          time_to_first_token_ms: s.ttftMs,
          prompt_tokens: s.promptTokens,
          completion_tokens: s.completionTokens,
          total_time_ms: s.totalMs,
        },
        { step },
      );
    }
    await this.tracking.logDict(
      runId,
      { request: answer.request ?? null, response: answer.response ?? null },
      `${COMPLETIONS_DIR}/${pad(step)}.json`,
    );
    await this.writeConversation(conv, runId);
    await this.tracking.endRun(runId, 'FINISHED');
  }

  /** Rewrites the conversation artifact (after an answer, a rename, an edit). */
  async writeConversation(conv: ConversationRecord, runId = conv.runId): Promise<void> {
    if (!runId) return;
    await this.tracking.logDict(runId, conversationToJson(conv), CONVERSATION_ARTIFACT);
  }
}

/**
 * "Open in Playground" from a run: the conversation it was logged from, or (when this browser
 * does not have it, e.g. the run was imported) one rebuilt from its conversation artifact.
 */
export async function openConversationFromRun(
  db: AnyDB,
  tracking: TrackingClient,
  runId: string,
): Promise<ConversationRecord> {
  const local = await convRepo.getConversationByRun(db, runId);
  if (local) return local;
  const run = await tracking.getRun(runId);
  let text: string;
  try {
    text = await tracking.readArtifactText(runId, CONVERSATION_ARTIFACT);
  } catch {
    throw new Error(
      `Run ${run.info.runName} has no ${CONVERSATION_ARTIFACT} artifact: only Playground runs can be opened here.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${CONVERSATION_ARTIFACT}: not valid JSON (${(e as Error).message})`);
  }
  const rec = conversationFromJson(value);
  if (await convRepo.getConversation(db, rec.id)) rec.id = crypto.randomUUID();
  rec.runId = runId;
  if (!rec.runIds.includes(runId)) rec.runIds.push(runId);
  rec.experimentId = run.info.experimentId;
  if (!rec.model && run.params.model_name && run.params.model_version)
    rec.model = { name: run.params.model_name, version: run.params.model_version };
  await convRepo.putConversation(db, rec);
  return rec;
}

// ---------------------------------------------------------------- page-level access

export interface PlaygroundServices {
  db: AnyDB;
  tracking: TrackingClient;
}

/** The database and tracking client the Playground page works with. */
export async function getPlaygroundServices(): Promise<PlaygroundServices> {
  const [db, tracking] = await Promise.all([getDatabase(), getTracking()]);
  return { db, tracking };
}

// Browser tests register the tiny model and seed conversations through this hook, present only
// when the page was opened with `?test` (as the tracking hook in app.ts).
if (typeof location !== 'undefined' && new URLSearchParams(location.search).has('test')) {
  (globalThis as unknown as { tabflowPlaygroundTest?: unknown }).tabflowPlaygroundTest = {
    async importModelZip(zip: Blob, name: string) {
      const { importModelZip } = await import('./model-import.ts');
      const db = await getDatabase();
      const r = await importModelZip(db, zip, { name });
      return { name: r.version.name, version: r.version.version, servable: r.servable };
    },
    async putConversation(value: unknown) {
      const db = await getDatabase();
      const rec = conversationFromJson(value);
      await convRepo.putConversation(db, rec);
      return rec.id;
    },
    async listConversations() {
      return convRepo.listConversations(await getDatabase());
    },
  };
}
