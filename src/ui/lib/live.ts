import { onStoreChange, type StoreChange } from '../../lib/services/events.ts';
import { errorMessage } from './format.ts';

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

/**
 * Loads now, then again after relevant store writes. Returns the unsubscribe function, so a page
 * can write `$effect(() => loadAndWatch(load, ...))` and have the subscription follow the page.
 */
export function loadAndWatch(
  load: () => Promise<unknown>,
  relevant: (c: StoreChange) => boolean = () => true,
  delayMs = 150,
): () => void {
  void load();
  return watchStore(() => void load(), relevant, delayMs);
}

/**
 * Reads what a detail page shows. `missing` when the record does not exist (MLflow's
 * RESOURCE_DOES_NOT_EXIST: the page shows its not-found state), `error` for any other failure;
 * both empty when `read` succeeded.
 */
export async function readRecord(
  read: () => Promise<void>,
): Promise<{ missing: boolean; error: string }> {
  try {
    await read();
    return { missing: false, error: '' };
  } catch (e) {
    if ((e as { errorCode?: string }).errorCode === 'RESOURCE_DOES_NOT_EXIST')
      return { missing: true, error: '' };
    return { missing: false, error: errorMessage(e) };
  }
}
