import { errorMessage } from './format.ts';

/**
 * One change at a time for an editor (tags, aliases) or a confirm dialog (rename, delete): `busy`
 * disables its buttons while the change is stored, and `error` keeps the refusal to show beside it.
 */
export class EditAction {
  busy = $state(false);
  error = $state('');

  /** Runs `f`; true when it succeeded, false when it threw (its message is in `error`). */
  async run(f: () => Promise<void>): Promise<boolean> {
    this.busy = true;
    this.error = '';
    try {
      await f();
      return true;
    } catch (e) {
      this.error = errorMessage(e);
      return false;
    } finally {
      this.busy = false;
    }
  }
}

/** A record's entries sorted by key, as the editors list them. */
export function sortedEntries(
  record: Record<string, string>,
  keep: (key: string) => boolean = () => true,
): [string, string][] {
  return Object.entries(record)
    .filter(([k]) => keep(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
