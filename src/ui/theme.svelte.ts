export type ThemeChoice = 'system' | 'light' | 'dark';

const KEY = 'tabflow:theme';

/** Light/dark follows prefers-color-scheme unless the user picks one (kept in localStorage). */
class Theme {
  choice = $state<ThemeChoice>('system');

  constructor() {
    if (typeof localStorage === 'undefined') return;
    const saved = localStorage.getItem(KEY);
    if (saved === 'light' || saved === 'dark') this.choice = saved;
    this.#apply();
  }

  set(choice: ThemeChoice): void {
    this.choice = choice;
    if (choice === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
    this.#apply();
  }

  #apply(): void {
    const root = document.documentElement;
    if (this.choice === 'system') delete root.dataset.theme;
    else root.dataset.theme = this.choice;
  }
}

export const theme = new Theme();
