import type {
  CompleteMessage,
  GenerateInput,
  GenerationParams,
  StartMessage,
  UpdateMessage,
} from './protocol.ts';

/** One running generation: its streamed updates, its final result, and a way to stop it. */
export interface GenerationHandle extends AsyncIterable<UpdateMessage> {
  readonly requestId: string;
  /** Resolves with the prompt size once tokenization is done. */
  readonly started: Promise<StartMessage>;
  readonly result: Promise<CompleteMessage>;
  /** Stops after the token being computed; `result` then resolves with `interrupted: true`. */
  interrupt(): void;
}

/** Anything that can run a generation: the worker client, or an engine in this thread. */
export interface TextGenerator {
  generate(input: GenerateInput, params: GenerationParams): GenerationHandle;
}

/**
 * A single-consumer queue of updates, closed by the final result or an error. Updates pushed
 * before anyone iterates are kept, so no token is lost to a late `for await`.
 */
export class UpdateStream implements AsyncIterable<UpdateMessage> {
  private items: UpdateMessage[] = [];
  private waiting: ((r: IteratorResult<UpdateMessage>) => void) | null = null;
  private failWaiting: ((e: unknown) => void) | null = null;
  private done = false;
  private error: unknown = null;

  push(u: UpdateMessage): void {
    if (this.done) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failWaiting = null;
      w({ value: u, done: false });
    } else this.items.push(u);
  }

  close(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.error = error ?? null;
    if (this.waiting) {
      const w = this.waiting;
      const f = this.failWaiting!;
      this.waiting = this.failWaiting = null;
      if (error) f(error);
      else w({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<UpdateMessage> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item) return Promise.resolve({ value: item, done: false });
        if (this.done) {
          return this.error
            ? Promise.reject(this.error)
            : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
    };
  }
}

let counter = 0;
export function newRequestId(prefix = 'req'): string {
  const rnd =
    typeof crypto !== 'undefined' && 'randomUUID' in crypto
      ? crypto.randomUUID().slice(0, 8)
      : Math.random().toString(36).slice(2, 10);
  return `${prefix}-${++counter}-${rnd}`;
}
