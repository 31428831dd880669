import { onStoreChange, type StoreChange } from '../../../lib/services/events.ts';

/**
 * Calls `reload` after store writes (in this tab or another) that `relevant` accepts, at most
 * once per `delayMs`: a burst of logged metrics re-reads once. Returns the unsubscribe function.
 */
export function watchStore(
  reload: () => void,
  relevant: (c: StoreChange) => boolean = () => true,
  delayMs = 150,
): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const off = onStoreChange((c) => {
    if (!relevant(c) || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      reload();
    }, delayMs);
  });
  return () => {
    off();
    if (timer !== undefined) clearTimeout(timer);
  };
}
