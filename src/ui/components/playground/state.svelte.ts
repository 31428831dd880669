/**
 * The Playground's UI state: which model version is served and how, the conversation on
 * screen, and the answer streaming in. Conversations and runs live in IndexedDB (through the
 * services); this holds what is on screen and the one inference client of the page.
 */
import { InferenceClient } from '../../../lib/inference/client.ts';
import {
  InferenceError,
  type Backend,
  type BackendPreference,
  type ErrorCode,
  type ProgressMessage,
  type ReadyMessage,
} from '../../../lib/inference/protocol.ts';
import { detectWebGpu } from '../../../lib/services/environment.ts';
import type { GenerationHandle } from '../../../lib/inference/handle.ts';
import type { Signature } from '../../../lib/mlflow/signature.ts';
import {
  PlaygroundAutolog,
  describeBackend,
  generateAnswer,
  getPlaygroundServices,
  getServableVersion,
  listServableVersions,
  loadModelVersion,
  openConversationFromRun,
  readChatTemplate,
  renderChatTemplate,
  validateSettings,
  type PlaygroundServices,
  type ServableVersion,
  type SettingsCheck,
} from '../../../lib/services/playground.ts';
import {
  createConversation,
  deleteConversation,
  exportConversation,
  getConversation,
  importConversation,
  listConversations,
  renameConversation,
  saveConversation,
  titleFrom,
  type ConversationRecord,
  type GenerationSettings,
  type StoredMessage,
} from '../../../lib/services/conversations.ts';
import { onStoreChange } from '../../../lib/services/events.ts';

export type LoadPhase = 'idle' | 'loading' | 'ready' | 'error';

const AUTOLOG_KEY = 'tabflow.playground.autolog';

let sharedClient: InferenceClient | null = null;

export class PlaygroundState {
  services: PlaygroundServices | null = null;
  servable = $state<ServableVersion[]>([]);
  listed = $state(false);
  /** `${name}@${version}` of the version picked in the selector. */
  selectedKey = $state('');
  backendPref = $state<BackendPreference>('auto');

  phase = $state<LoadPhase>('idle');
  progress = $state<{ phase: string; file?: string; loaded: number; total: number } | null>(null);
  loadError = $state('');
  /** The error code of the failed load or crash (`oom`, `device-lost`, `too-large`...); '' if none. */
  loadErrorCode = $state<ErrorCode | ''>('');
  /** Where the model ran last (before a crash), so a recovery can offer the other backend. */
  lastBackend = $state<Backend | null>(null);
  /** Whether this browser has a WebGPU adapter (checked once, on init). */
  webGpuAvailable = $state(false);
  loaded = $state<{
    target: ServableVersion;
    ready: ReadyMessage;
    signature: Signature | null;
  } | null>(null);

  conversations = $state<ConversationRecord[]>([]);
  current = $state<ConversationRecord | null>(null);
  streaming = $state(false);
  streamText = $state('');
  streamTokens = $state(0);
  streamTps = $state(0);
  /** Index of the message being answered (the streaming bubble goes after it). */
  error = $state('');
  notice = $state('');

  autolog = $state(true);
  experimentName = $state('');
  promptDraft = $state('');

  private handle: GenerationHandle | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor() {
    if (typeof localStorage !== 'undefined')
      this.autolog = localStorage.getItem(AUTOLOG_KEY) !== 'off';
  }

  get client(): InferenceClient {
    sharedClient ??= new InferenceClient({
      onCrash: (e) => (activeState ?? this).failed(e),
    });
    return sharedClient;
  }

  get selected(): ServableVersion | undefined {
    return this.servable.find((s) => `${s.name}@${s.version}` === this.selectedKey);
  }

  get mode(): 'chat' | 'prompt' {
    return this.loaded?.target.kind ?? this.selected?.kind ?? 'chat';
  }

  get backendLabel(): string {
    return this.loaded ? describeBackend(this.loaded.ready) : '';
  }

  settingsCheck(settings: GenerationSettings): SettingsCheck {
    return validateSettings(settings, this.loaded?.signature ?? null);
  }

  /** A load that failed or a worker that crashed: the conversation on screen stays. */
  failed(e: unknown): void {
    this.phase = 'error';
    this.loadError = e instanceof Error ? e.message : String(e);
    this.loadErrorCode = e instanceof InferenceError ? e.code : '';
    this.loaded = null;
    this.progress = null;
  }

  /** Loads the selected model again, on `backend` when given (the page is not reloaded). */
  async reload(backend?: BackendPreference): Promise<void> {
    if (backend) this.backendPref = backend;
    await this.load();
  }

  /** After a crash or out-of-memory: the backend other than the one that failed. */
  get otherBackend(): BackendPreference {
    const last = this.lastBackend ?? (this.backendPref === 'webgpu' ? 'webgpu' : 'wasm');
    if (last === 'webgpu') return 'wasm';
    return this.webGpuAvailable ? 'webgpu' : this.backendPref === 'ort-wasm' ? 'cpu' : 'ort-wasm';
  }

  async init(route: { model?: string; version?: string; runId?: string }): Promise<void> {
    activeState = this;
    void detectWebGpu().then((g) => (this.webGpuAvailable = g.available));
    this.services = await getPlaygroundServices();
    this.unsubscribe?.();
    this.unsubscribe = onStoreChange((c) => {
      if (c.kind === 'registry' || c.kind === 'import' || c.kind === 'model')
        void this.refreshModels();
    });
    await this.refreshModels();
    await this.refreshConversations();
    // A model already loaded in this page (the user came back to the Playground) stays served.
    const c = this.client;
    if (c.state === 'ready' && c.ready && this.loaded === null && lastLoaded) {
      this.loaded = lastLoaded;
      this.phase = 'ready';
      this.selectedKey = `${lastLoaded.target.name}@${lastLoaded.target.version}`;
    }
    if (route.runId) {
      try {
        const conv = await openConversationFromRun(
          this.services.db,
          this.services.tracking,
          route.runId,
        );
        await this.refreshConversations();
        this.select(conv);
        if (conv.model && !route.model) this.preselect(conv.model.name, conv.model.version);
        this.notice = `Restored from run ${route.runId}: the conversation and its settings.`;
      } catch (e) {
        this.error = (e as Error).message;
      }
    }
    if (route.model) this.preselect(route.model, route.version);
    if (!this.selectedKey && this.servable[0])
      this.selectedKey = `${this.servable[0].name}@${this.servable[0].version}`;
  }

  dispose(): void {
    this.unsubscribe?.();
  }

  private preselect(name: string, version?: string): void {
    const match = this.servable.find(
      (s) => s.name === name && (version === undefined || s.version === version),
    );
    if (match) this.selectedKey = `${match.name}@${match.version}`;
    else
      this.error = `Model ${name}${version ? ` version ${version}` : ''} is not registered here or cannot be served in the browser.`;
  }

  async refreshModels(): Promise<void> {
    if (!this.services) return;
    this.servable = await listServableVersions(this.services.db);
    this.listed = true;
    if (!this.selected && this.servable[0])
      this.selectedKey = `${this.servable[0].name}@${this.servable[0].version}`;
  }

  async refreshConversations(): Promise<void> {
    if (!this.services) return;
    this.conversations = await listConversations(this.services.db);
  }

  async load(): Promise<void> {
    const target = this.selected;
    if (!target || !this.services) return;
    this.phase = 'loading';
    this.loadError = '';
    this.loadErrorCode = '';
    this.progress = { phase: 'read', loaded: 0, total: target.size };
    try {
      const fresh = await getServableVersion(this.services.db, target.name, target.version);
      const loaded = await loadModelVersion(
        this.client,
        this.services.db,
        fresh,
        this.backendPref,
        (p: ProgressMessage) => {
          this.progress = {
            phase: p.phase,
            loaded: p.loaded,
            total: p.total,
            ...(p.file ? { file: p.file } : {}),
          };
        },
      );
      this.loaded = loaded;
      lastLoaded = loaded;
      this.lastBackend = loaded.ready.backend;
      this.phase = 'ready';
      this.progress = null;
      if (this.current && this.current.mode !== loaded.target.kind) this.current = null;
    } catch (e) {
      this.failed(e);
    }
  }

  setAutolog(on: boolean): void {
    this.autolog = on;
    localStorage.setItem(AUTOLOG_KEY, on ? 'on' : 'off');
  }

  select(conv: ConversationRecord | null): void {
    this.current = conv ? structuredClone(conv) : null;
    this.promptDraft = conv?.promptDraft ?? '';
    this.error = '';
  }

  async open(id: string): Promise<void> {
    if (!this.services || this.streaming) return;
    const conv = await getConversation(this.services.db, id);
    if (conv) this.select(conv);
  }

  /** A fresh, unsaved conversation; it is stored with its first message. */
  newConversation(opts: { keepDraft?: boolean } = {}): void {
    if (this.streaming) return;
    const prev = this.current;
    this.current = {
      id: '',
      title: 'New conversation',
      mode: this.mode,
      createdAt: Date.now(),
      updatedAt: Date.now(),
      model: this.loaded
        ? { name: this.loaded.target.name, version: this.loaded.target.version }
        : null,
      systemPrompt: prev?.systemPrompt ?? '',
      settings: prev ? { ...prev.settings } : {},
      messages: [],
      runIds: [],
    };
    if (!opts.keepDraft) this.promptDraft = '';
  }

  async rename(id: string, title: string): Promise<void> {
    if (!this.services) return;
    const rec = await renameConversation(this.services.db, id, title);
    if (this.current?.id === id) this.current.title = rec.title;
    if (rec.runId && this.autolog) {
      await new PlaygroundAutolog(this.services.tracking)
        .writeConversation(rec)
        .catch(() => undefined);
    }
    await this.refreshConversations();
  }

  async remove(id: string): Promise<void> {
    if (!this.services) return;
    await deleteConversation(this.services.db, id);
    if (this.current?.id === id) this.current = null;
    await this.refreshConversations();
  }

  /** Imports an exported conversation JSON file as a new conversation and opens it. */
  async importJson(file: File): Promise<void> {
    if (!this.services) return;
    try {
      const rec = await importConversation(this.services.db, await file.text(), file.name);
      await this.refreshConversations();
      this.select(rec);
    } catch (e) {
      this.error = (e as Error).message;
    }
  }

  exportJson(conv: ConversationRecord): { name: string; text: string } {
    const safe = conv.title.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'conversation';
    return { name: `${safe}.json`, text: exportConversation(conv) };
  }

  private async ensureStored(): Promise<ConversationRecord> {
    const s = this.services!;
    let conv = this.current;
    if (!conv) {
      this.newConversation({ keepDraft: true });
      conv = this.current!;
    }
    if (!conv.id) {
      // IndexedDB cannot store $state proxies: hand it plain copies.
      const plain = $state.snapshot(conv) as ConversationRecord;
      const created = await createConversation(s.db, {
        mode: plain.mode,
        model: plain.model,
        systemPrompt: plain.systemPrompt,
        settings: plain.settings,
      });
      conv.id = created.id;
      conv.createdAt = created.createdAt;
    }
    return conv;
  }

  /** Sends the user's message (chat) or the raw prompt (prompt) and streams the answer. */
  async send(text: string): Promise<void> {
    if (!this.loaded || this.streaming || !this.services) return;
    if (!text.trim()) return;
    try {
      await this.sendUnchecked(text);
    } catch (e) {
      this.streaming = false;
      this.error = `Could not send: ${(e as Error).message}`;
    }
  }

  private async sendUnchecked(text: string): Promise<void> {
    const conv = await this.ensureStored();
    if (conv.messages.length === 0) conv.title = titleFrom(text);
    conv.messages.push({
      id: crypto.randomUUID(),
      role: 'user',
      content: text,
      createdAt: Date.now(),
    });
    if (conv.mode === 'prompt') conv.promptDraft = text;
    await this.answer(conv.messages.length);
  }

  /** Regenerates the answer at `index` (an assistant message): it is replaced. */
  async regenerate(index: number): Promise<void> {
    const conv = this.current;
    if (!conv || this.streaming) return;
    conv.messages.splice(index);
    await this.guard(() => this.answer(index));
  }

  private async guard(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.streaming = false;
      this.error = (e as Error).message;
    }
  }

  /** Replaces the user message at `index` and answers again from there. */
  async editAndResend(index: number, text: string): Promise<void> {
    const conv = this.current;
    if (!conv || this.streaming || !text.trim()) return;
    const msg = conv.messages[index];
    if (!msg || msg.role !== 'user') return;
    conv.messages.splice(index + 1);
    msg.content = text;
    if (conv.mode === 'prompt') conv.promptDraft = text;
    await this.guard(() => this.answer(index + 1));
  }

  stop(): void {
    this.handle?.interrupt();
  }

  private async answer(upto: number): Promise<void> {
    const loaded = this.loaded!;
    const s = this.services!;
    const conv = this.current!;
    const check = this.settingsCheck(conv.settings);
    if (Object.keys(check.errors).length > 0) {
      this.error = `Fix the parameters first: ${Object.entries(check.errors)
        .map(([k, v]) => `${k} ${v}`)
        .join('; ')}`;
      return;
    }
    conv.model = { name: loaded.target.name, version: loaded.target.version };
    conv.backend = loaded.ready.backend;
    conv.mode = loaded.target.kind;
    this.error = '';
    this.streaming = true;
    this.streamText = '';
    this.streamTokens = 0;
    this.streamTps = 0;
    let answer: StoredMessage;
    const plain = $state.snapshot(conv) as ConversationRecord;
    try {
      answer = await generateAnswer(this.client, plain, {
        modelName: `${loaded.target.name}/${loaded.target.version}`,
        uptoIndex: upto,
        prompt: conv.messages[upto - 1]?.content ?? '',
        onHandle: (h) => (this.handle = h),
        onText: (t, n, tps) => {
          this.streamText = t;
          this.streamTokens = n;
          this.streamTps = tps;
        },
      });
    } catch (e) {
      answer = {
        id: crypto.randomUUID(),
        role: 'assistant',
        content: '',
        createdAt: Date.now(),
        error: (e as Error).message,
      };
    } finally {
      this.handle = null;
    }
    conv.messages.splice(upto, conv.messages.length - upto, answer);
    let saved = $state.snapshot(conv) as ConversationRecord;
    if (this.autolog && !answer.error) {
      try {
        const target = saved.messages[upto]!;
        await new PlaygroundAutolog(s.tracking).logAnswer(saved, target, {
          model: { name: loaded.target.name, version: loaded.target.version },
          backend: loaded.ready.backend,
          ...(this.experimentName.trim() ? { experimentName: this.experimentName.trim() } : {}),
        });
      } catch (e) {
        this.error = `The answer was kept, but logging it as a run failed: ${(e as Error).message}`;
      }
    }
    saved = await saveConversation(s.db, saved);
    this.current = saved;
    this.streaming = false;
    this.streamText = '';
    await this.refreshConversations();
  }

  /** Saves settings or the system prompt as the user edits them. */
  async persistSettings(): Promise<void> {
    const conv = this.current;
    if (!conv?.id || !this.services || this.streaming) return;
    const saved = await saveConversation(
      this.services.db,
      $state.snapshot(conv) as ConversationRecord,
      false,
    );
    void saved;
  }

  async chatTemplateExample(system: string, user: string): Promise<string> {
    const target = this.loaded?.target ?? this.selected;
    if (!target || !this.services) return '';
    const template = await readChatTemplate(this.services.db, target);
    const messages = [
      ...(system.trim() ? [{ role: 'system' as const, content: system }] : []),
      { role: 'user' as const, content: user || 'Your question here' },
    ];
    return renderChatTemplate(template, messages);
  }
}

let lastLoaded: PlaygroundState['loaded'] = null;
/** The Playground on screen: a crash of the shared worker is reported to it. */
let activeState: PlaygroundState | null = null;

// Browser tests crash or hang the page's inference worker through the Playground test hook,
// present only with `?test` (see services/playground.ts).
const testHook = (globalThis as unknown as { tabflowPlaygroundTest?: Record<string, unknown> })
  .tabflowPlaygroundTest;
if (testHook) {
  testHook.simulateCrash = (mode: 'uncaught' | 'hang') => sharedClient?.simulateCrash(mode);
}
