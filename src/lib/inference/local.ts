import { runGeneration, type Engine } from './engine.ts';
import { nextMacrotask } from './generate.ts';
import { UpdateStream, newRequestId, type GenerationHandle, type TextGenerator } from './handle.ts';
import type { CompleteMessage, GenerateInput, GenerationParams, StartMessage } from './protocol.ts';

/** Drops keys whose value is undefined, so they do not override defaults when spread. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Runs generations on an engine in the current thread, one at a time in arrival order. The
 * worker serves its requests through this; Node tests use it directly.
 */
export class LocalGenerator implements TextGenerator {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly engine: Engine,
    private readonly yieldControl: () => Promise<void> = nextMacrotask,
  ) {}

  generate(
    input: GenerateInput,
    params: GenerationParams,
    requestId = newRequestId('gen'),
  ): GenerationHandle {
    const updates = new UpdateStream();
    let stopped = false;
    let resolveStart!: (s: StartMessage) => void;
    const started = new Promise<StartMessage>((r) => (resolveStart = r));
    const run = async (): Promise<CompleteMessage> => {
      const merged = { ...this.engine.defaults, ...definedOnly(params) };
      const r = await runGeneration(this.engine, input, merged, {
        onStart: (promptTokens) => resolveStart({ type: 'start', requestId, promptTokens }),
        onToken: (e) => updates.push({ type: 'update', requestId, ...e }),
        shouldStop: () => stopped,
        yieldControl: this.yieldControl,
      });
      const first = r.choices[0]!;
      return {
        type: 'complete',
        requestId,
        text: first.text,
        finishReason: first.finishReason,
        choices: r.choices,
        usage: r.usage,
        timings: r.timings,
        interrupted: r.interrupted,
      };
    };
    const result = this.queue.then(run);
    this.queue = result.catch(() => undefined);
    result.then(
      () => updates.close(),
      (e) => updates.close(e),
    );
    // A failed request never reports a start; keep `started` from hanging.
    result.catch(() => resolveStart({ type: 'start', requestId, promptTokens: 0 }));
    return {
      requestId,
      started,
      result,
      interrupt: () => {
        stopped = true;
      },
      [Symbol.asyncIterator]: () => updates[Symbol.asyncIterator](),
    };
  }
}
