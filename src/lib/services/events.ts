/**
 * A tiny typed bus that says "the store changed" after each write, so views can re-read.
 * Other tabs hear it through a BroadcastChannel named 'tabflow'.
 */
export type StoreChangeKind =
  'experiment' | 'run' | 'metric' | 'param' | 'tag' | 'artifact' | 'registry' | 'model' | 'import';

export interface StoreChange {
  kind: StoreChangeKind;
  /** The id of what changed (experiment id, run id, model name...). */
  id: string;
  /** Set on events that came from another tab. */
  remote?: boolean;
}

type Listener = (change: StoreChange) => void;

const listeners = new Set<Listener>();
let channel: BroadcastChannel | null | undefined;

function getChannel(): BroadcastChannel | null {
  if (channel !== undefined) return channel;
  if (typeof BroadcastChannel === 'undefined') return (channel = null);
  try {
    channel = new BroadcastChannel('tabflow');
    channel.onmessage = (ev: MessageEvent) => {
      const data = ev.data as Partial<StoreChange> | null;
      if (data && typeof data.kind === 'string' && typeof data.id === 'string') {
        deliver({ kind: data.kind as StoreChangeKind, id: data.id, remote: true });
      }
    };
    // A channel must not keep Node (tests, benchmarks) alive.
    (channel as unknown as { unref?: () => void }).unref?.();
  } catch {
    channel = null;
  }
  return channel;
}

function deliver(change: StoreChange): void {
  for (const cb of [...listeners]) {
    try {
      cb(change);
    } catch (e) {
      console.error('store change listener failed', e);
    }
  }
}

/** Subscribes; returns the function that unsubscribes. */
export function onStoreChange(cb: Listener): () => void {
  getChannel();
  listeners.add(cb);
  return () => listeners.delete(cb);
}

export function emitStoreChange(change: StoreChange): void {
  deliver({ kind: change.kind, id: change.id });
  getChannel()?.postMessage({ kind: change.kind, id: change.id });
}
