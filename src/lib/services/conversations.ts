/**
 * Playground conversations: the user's verbs (start, rename, delete, export, edit a turn) and the
 * JSON form a conversation takes as a run artifact and as an export. That JSON is read back when a
 * run is opened in the Playground, so reading it treats it as untrusted input.
 */
import type { AnyDB } from '../store/db.ts';
import * as repo from '../store/conversations.ts';
import type {
  ConversationRecord,
  GenerationSettings,
  StoredMessage,
} from '../store/conversations.ts';

export type {
  AnswerStats,
  ConversationRecord,
  GenerationSettings,
  StoredMessage,
} from '../store/conversations.ts';

/** The version of the conversation JSON this app writes. */
export const CONVERSATION_FORMAT = 'tabflow.conversation/1';

export function newId(): string {
  return crypto.randomUUID();
}

export interface NewConversation {
  mode: 'chat' | 'prompt';
  model: { name: string; version: string } | null;
  systemPrompt?: string;
  settings?: GenerationSettings;
  title?: string;
  now?: number;
}

export async function createConversation(
  db: AnyDB,
  init: NewConversation,
): Promise<ConversationRecord> {
  const now = init.now ?? Date.now();
  const rec: ConversationRecord = {
    id: newId(),
    title: init.title ?? 'New conversation',
    mode: init.mode,
    createdAt: now,
    updatedAt: now,
    model: init.model,
    systemPrompt: init.systemPrompt ?? '',
    settings: { ...(init.settings ?? {}) },
    messages: [],
    runIds: [],
  };
  await repo.putConversation(db, rec);
  return rec;
}

export const listConversations = repo.listConversations;
export const getConversation = repo.getConversation;
export const getConversationByRun = repo.getConversationByRun;

export async function saveConversation(
  db: AnyDB,
  rec: ConversationRecord,
  touch = true,
): Promise<ConversationRecord> {
  const copy = structuredClone($plain(rec));
  if (touch) copy.updatedAt = Math.max(Date.now(), copy.updatedAt + 1);
  await repo.putConversation(db, copy);
  return copy;
}

/** Svelte $state proxies cannot be structured-cloned: take a plain snapshot first. */
function $plain<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export async function renameConversation(
  db: AnyDB,
  id: string,
  title: string,
): Promise<ConversationRecord> {
  const t = title.trim();
  if (!t) throw new Error('A conversation needs a name.');
  if (t.length > 200) throw new Error('Conversation names are at most 200 characters.');
  return repo.updateConversation(db, id, (r) => {
    r.title = t;
    r.updatedAt = Date.now();
  });
}

export async function deleteConversation(db: AnyDB, id: string): Promise<void> {
  await repo.deleteConversation(db, id);
}

/** A title from the first user message, as chat apps do. */
export function titleFrom(text: string): string {
  // A raw Phi-3 prompt: name it after the (last) user turn, not the system message.
  const user = text.lastIndexOf('<|user|>');
  const line =
    (user >= 0 ? text.slice(user) : text)
      .replace(/<\|[a-z]+\|>/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? '';
  if (!line) return 'New conversation';
  return line.length > 60 ? `${line.slice(0, 57).trimEnd()}…` : line;
}

/**
 * The messages a new answer is generated from: the system prompt, then every user and
 * assistant turn up to (not including) `uptoIndex`.
 */
export function chatHistory(
  rec: Pick<ConversationRecord, 'systemPrompt' | 'messages'>,
  uptoIndex = rec.messages.length,
): { role: 'system' | 'user' | 'assistant'; content: string }[] {
  const out: { role: 'system' | 'user' | 'assistant'; content: string }[] = [];
  if (rec.systemPrompt.trim()) out.push({ role: 'system', content: rec.systemPrompt });
  for (const m of rec.messages.slice(0, uptoIndex)) {
    if (m.role === 'assistant' && (m.error || (m.interrupted && !m.content))) continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** The JSON of a conversation, as logged to its run and as exported. */
export function conversationToJson(rec: ConversationRecord): Record<string, unknown> {
  return {
    format: CONVERSATION_FORMAT,
    id: rec.id,
    title: rec.title,
    mode: rec.mode,
    created_at: rec.createdAt,
    updated_at: rec.updatedAt,
    model: rec.model,
    backend: rec.backend ?? null,
    system_prompt: rec.systemPrompt,
    settings: rec.settings,
    run_ids: rec.runIds,
    ...(rec.promptDraft !== undefined ? { prompt_draft: rec.promptDraft } : {}),
    messages: rec.messages.map((m) => ({
      id: m.id,
      role: m.role,
      content: m.content,
      created_at: m.createdAt,
      ...(m.alternatives ? { alternatives: m.alternatives } : {}),
      ...(m.stats
        ? {
            usage: {
              prompt_tokens: m.stats.promptTokens,
              completion_tokens: m.stats.completionTokens,
              total_tokens: m.stats.promptTokens + m.stats.completionTokens,
            },
            timings: {
              time_to_first_token_ms: m.stats.ttftMs,
              tokens_per_second: m.stats.tokensPerSecond,
              total_ms: m.stats.totalMs,
            },
          }
        : {}),
      ...(m.finishReason ? { finish_reason: m.finishReason } : {}),
      ...(m.interrupted ? { interrupted: true } : {}),
      ...(m.request !== undefined ? { request: m.request } : {}),
      ...(m.response !== undefined ? { response: m.response } : {}),
      ...(m.error ? { error: m.error } : {}),
      ...(m.runId ? { run_id: m.runId, step: m.step ?? 0 } : {}),
    })),
  };
}

export class ConversationFormatError extends Error {
  override name = 'ConversationFormatError';
  constructor(message: string, file = 'conversation.json') {
    super(`${file}: ${message}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? v : undefined;

function readSettings(v: unknown): GenerationSettings {
  const s: GenerationSettings = {};
  if (!isObj(v)) return s;
  for (const k of ['temperature', 'top_p', 'top_k', 'max_tokens', 'seed', 'n'] as const) {
    const n = num(v[k]);
    if (n !== undefined) s[k] = n;
  }
  if (Array.isArray(v.stop) && v.stop.every((x) => typeof x === 'string'))
    s.stop = v.stop as string[];
  return s;
}

/** Reads conversation JSON (a run artifact or an export). Errors name the field. */
export function conversationFromJson(
  value: unknown,
  file = 'conversation.json',
): ConversationRecord {
  const bad = (msg: string): never => {
    throw new ConversationFormatError(msg, file);
  };
  if (!isObj(value)) return bad('expected a JSON object');
  if (value.format !== CONVERSATION_FORMAT)
    bad(`expected "format": "${CONVERSATION_FORMAT}", got ${JSON.stringify(value.format)}`);
  if (!Array.isArray(value.messages)) bad('"messages" must be a list');
  const mode = value.mode === 'prompt' ? 'prompt' : 'chat';
  const model =
    isObj(value.model) &&
    typeof value.model.name === 'string' &&
    typeof value.model.version === 'string'
      ? { name: value.model.name, version: value.model.version }
      : null;
  const messages = (value.messages as unknown[]).map((m, i): StoredMessage => {
    if (!isObj(m)) return bad(`messages[${i}] must be an object`);
    if (m.role !== 'system' && m.role !== 'user' && m.role !== 'assistant')
      bad(`messages[${i}].role must be "system", "user" or "assistant"`);
    if (typeof m.content !== 'string') bad(`messages[${i}].content must be a string`);
    const out: StoredMessage = {
      id: typeof m.id === 'string' ? m.id : newId(),
      role: m.role as StoredMessage['role'],
      content: m.content as string,
      createdAt: num(m.created_at) ?? 0,
    };
    const usage = isObj(m.usage) ? m.usage : null;
    const timings = isObj(m.timings) ? m.timings : null;
    if (usage && timings) {
      out.stats = {
        promptTokens: num(usage.prompt_tokens) ?? 0,
        completionTokens: num(usage.completion_tokens) ?? 0,
        ttftMs: num(timings.time_to_first_token_ms) ?? 0,
        tokensPerSecond: num(timings.tokens_per_second) ?? 0,
        totalMs: num(timings.total_ms) ?? 0,
      };
    }
    if (Array.isArray(m.alternatives) && m.alternatives.every((a) => typeof a === 'string'))
      out.alternatives = m.alternatives as string[];
    if (typeof m.finish_reason === 'string') out.finishReason = m.finish_reason;
    if (m.interrupted === true) out.interrupted = true;
    if ('request' in m) out.request = m.request;
    if ('response' in m) out.response = m.response;
    if (typeof m.error === 'string') out.error = m.error;
    if (typeof m.run_id === 'string') {
      out.runId = m.run_id;
      out.step = num(m.step) ?? 0;
    }
    return out;
  });
  const now = Date.now();
  const rec: ConversationRecord = {
    id: typeof value.id === 'string' && value.id ? value.id : newId(),
    title: typeof value.title === 'string' && value.title.trim() ? value.title : 'Conversation',
    mode,
    createdAt: num(value.created_at) ?? now,
    updatedAt: num(value.updated_at) ?? now,
    model,
    systemPrompt: typeof value.system_prompt === 'string' ? value.system_prompt : '',
    settings: readSettings(value.settings),
    messages,
    runIds: Array.isArray(value.run_ids)
      ? (value.run_ids as unknown[]).filter((x): x is string => typeof x === 'string')
      : [],
  };
  if (typeof value.backend === 'string') rec.backend = value.backend;
  if (typeof value.prompt_draft === 'string') rec.promptDraft = value.prompt_draft;
  return rec;
}

/** The export file's text (pretty JSON). */
export function exportConversation(rec: ConversationRecord): string {
  return JSON.stringify(conversationToJson(rec), null, 2) + '\n';
}

/** Imports an exported conversation as a new one (a fresh id, so it never overwrites). */
export async function importConversation(
  db: AnyDB,
  text: string,
  file = 'conversation.json',
): Promise<ConversationRecord> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConversationFormatError(`not valid JSON (${(e as Error).message})`, file);
  }
  const rec = conversationFromJson(value, file);
  rec.id = newId();
  delete rec.runId;
  rec.updatedAt = Date.now();
  await repo.putConversation(db, rec);
  return rec;
}
