import type { AnyDB } from './db.ts';

/**
 * Playground records: conversations (chat and prompt sessions) and prompt-evaluation projects.
 * Both are small JSON records; model weights and run artifacts live in their own stores.
 */

/** Generation settings as the user set them (OpenAI / llm/v1/chat names). */
export interface GenerationSettings {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  stop?: string[];
  seed?: number;
  n?: number;
}

/** What was measured for one answer. */
export interface AnswerStats {
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  tokensPerSecond: number;
  totalMs: number;
}

export interface StoredMessage {
  id: string;
  role: 'system' | 'user' | 'assistant';
  content: string;
  createdAt: number;
  /** Assistant answers: the other choices when n > 1. */
  alternatives?: string[];
  stats?: AnswerStats;
  finishReason?: string;
  interrupted?: boolean;
  /** The request that produced this answer, as sent (llm/v1/chat body or {prompt}). */
  request?: unknown;
  /** The raw response: a chat.completion for chat sessions, a string for prompt sessions. */
  response?: unknown;
  error?: string;
  /** The run and metric step the answer was logged at (autolog). */
  runId?: string;
  step?: number;
}

export interface ConversationRecord {
  id: string;
  title: string;
  mode: 'chat' | 'prompt';
  createdAt: number;
  updatedAt: number;
  model: { name: string; version: string } | null;
  backend?: string;
  systemPrompt: string;
  settings: GenerationSettings;
  messages: StoredMessage[];
  /** Prompt sessions: the text in the raw prompt editor. */
  promptDraft?: string;
  /** The run new answers are logged to (a new one starts when the settings change). */
  runId?: string;
  experimentId?: string;
  /** Every run this conversation was logged to, oldest first. */
  runIds: string[];
}

export interface EvalProjectRecord {
  id: string;
  name: string;
  createdAt: number;
  updatedAt: number;
  /** Project-relative path -> text (MLproject, the dataset, a README...). */
  files: Record<string, string>;
}

// ---------------------------------------------------------------- conversations

export async function putConversation(db: AnyDB, rec: ConversationRecord): Promise<void> {
  await db.put('conversations', rec);
}

export async function getConversation(
  db: AnyDB,
  id: string,
): Promise<ConversationRecord | undefined> {
  return (await db.get('conversations', id)) as ConversationRecord | undefined;
}

export async function getConversationByRun(
  db: AnyDB,
  runId: string,
): Promise<ConversationRecord | undefined> {
  const direct = (await db.getFromIndex('conversations', 'runId', runId)) as
    ConversationRecord | undefined;
  if (direct) return direct;
  // An earlier run of a conversation that has moved on to a new one.
  let found: ConversationRecord | undefined;
  let cursor = await db.transaction('conversations').store.openCursor();
  while (cursor && !found) {
    const rec = cursor.value as ConversationRecord;
    if (rec.runIds.includes(runId)) found = rec;
    cursor = await cursor.continue();
  }
  return found;
}

/** Newest first, at most `limit` (the sidebar reads a page, never everything). */
export async function listConversations(db: AnyDB, limit = 200): Promise<ConversationRecord[]> {
  const out: ConversationRecord[] = [];
  let cursor = await db
    .transaction('conversations')
    .store.index('updatedAt')
    .openCursor(null, 'prev');
  while (cursor && out.length < limit) {
    out.push(cursor.value as ConversationRecord);
    cursor = await cursor.continue();
  }
  return out;
}

/** Reads, changes and writes one conversation in a single transaction. */
export async function updateConversation(
  db: AnyDB,
  id: string,
  change: (rec: ConversationRecord) => void,
): Promise<ConversationRecord> {
  const tx = db.transaction('conversations', 'readwrite');
  const rec = (await tx.store.get(id)) as ConversationRecord | undefined;
  if (!rec) {
    tx.abort();
    await tx.done.catch(() => undefined);
    throw new Error(`Conversation '${id}' not found`);
  }
  change(rec);
  await tx.store.put(rec);
  await tx.done;
  return rec;
}

export async function deleteConversation(db: AnyDB, id: string): Promise<void> {
  await db.delete('conversations', id);
}

// ---------------------------------------------------------------- evaluation projects

export async function putEvalProject(db: AnyDB, rec: EvalProjectRecord): Promise<void> {
  await db.put('evalProjects', rec);
}

export async function getEvalProject(
  db: AnyDB,
  id: string,
): Promise<EvalProjectRecord | undefined> {
  return (await db.get('evalProjects', id)) as EvalProjectRecord | undefined;
}

export async function listEvalProjects(db: AnyDB): Promise<EvalProjectRecord[]> {
  const all = (await db.getAllFromIndex('evalProjects', 'updatedAt')) as EvalProjectRecord[];
  return all.reverse();
}

export async function deleteEvalProject(db: AnyDB, id: string): Promise<void> {
  await db.delete('evalProjects', id);
}
