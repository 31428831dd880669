/**
 * Registers the app's service worker and exposes its state to the UI: whether a new build is
 * waiting (the update prompt) and whether the page is cross-origin isolated.
 */
class ServiceWorkerState {
  updateWaiting = $state(false);
  active = $state(false);
  error = $state<string | null>(null);
  #registration: ServiceWorkerRegistration | null = null;

  async register(): Promise<void> {
    if (!('serviceWorker' in navigator)) return;
    try {
      const reg = await navigator.serviceWorker.register('./sw.js', { scope: './' });
      this.#registration = reg;
      this.active = reg.active !== null;
      if (reg.waiting && navigator.serviceWorker.controller) this.updateWaiting = true;
      reg.addEventListener('updatefound', () => {
        const next = reg.installing;
        next?.addEventListener('statechange', () => {
          if (next.state === 'installed' && navigator.serviceWorker.controller) {
            this.updateWaiting = true;
          }
          if (next.state === 'activated') this.active = true;
        });
      });
      await navigator.serviceWorker.ready;
      this.active = true;
      this.#isolateOnce();
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
  }

  /** The user accepted the update: activate the waiting worker, then reload into it. */
  applyUpdate(): void {
    const waiting = this.#registration?.waiting;
    if (!waiting) return;
    navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), {
      once: true,
    });
    waiting.postMessage('skip-waiting');
  }

  async checkForUpdate(): Promise<void> {
    await this.#registration?.update();
  }

  /**
   * On a host without COOP/COEP headers the first load is not isolated; once the worker
   * controls the page, one reload makes it so. A session flag prevents reload loops.
   */
  #isolateOnce(): void {
    if (crossOriginIsolated || !navigator.serviceWorker.controller) {
      if (!navigator.serviceWorker.controller) {
        navigator.serviceWorker.addEventListener('controllerchange', () => this.#isolateOnce(), {
          once: true,
        });
      }
      return;
    }
    const key = 'tabflow:isolation-reload';
    if (sessionStorage.getItem(key)) return;
    sessionStorage.setItem(key, '1');
    location.reload();
  }
}

export const serviceWorker = new ServiceWorkerState();

export function registerServiceWorker(): Promise<void> {
  return serviceWorker.register();
}
