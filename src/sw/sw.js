/* Tabflow's service worker. Plain JS: vite.config.ts fills in the build id and file list.
 * (a) Serves the app shell from cache after the first visit, so the app opens offline.
 * (b) Re-serves same-origin responses with COOP/COEP so the page is cross-origin isolated
 *     on hosts that cannot set headers (GitHub Pages); multi-threaded wasm needs that.
 * A new build installs beside the old one and waits: the page shows an update prompt and
 * posts 'skip-waiting' when the user accepts. */
const BUILD_ID = '__BUILD_ID__';
const SHELL_FILES = __SHELL_FILES__;
const SHELL_CACHE = `tabflow-shell-${BUILD_ID}`;
const RUNTIME_CACHE = 'tabflow-runtime';

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      await cache.addAll(SHELL_FILES.map((f) => new Request(f, { cache: 'reload' })));
      // The very first install has nothing to replace: take over at once.
      if (!self.registration.active) await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith('tabflow-shell-') && key !== SHELL_CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') void self.skipWaiting();
  if (event.data === 'build-id') event.source?.postMessage({ buildId: BUILD_ID });
});

function isolated(response) {
  if (!response || response.status === 0 || response.type === 'opaque') return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Cross-Origin-Resource-Policy', 'same-origin');
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

async function fromCaches(request) {
  const shell = await caches.open(SHELL_CACHE);
  const hit = (await shell.match(request, { ignoreSearch: true, ignoreVary: true })) ?? undefined;
  if (hit) return hit;
  const runtime = await caches.open(RUNTIME_CACHE);
  return (await runtime.match(request, { ignoreVary: true })) ?? undefined;
}

async function handle(request) {
  const url = new URL(request.url);
  if (request.mode === 'navigate') {
    // The app is one page with hash routes: every navigation inside scope gets the shell.
    const cached = await fromCaches(new Request(new URL('./index.html', self.registration.scope)));
    if (cached) return isolated(cached);
    return isolated(await fetch(request));
  }
  const cached = await fromCaches(request);
  if (cached) return isolated(cached);
  const response = await fetch(request);
  // Hashed build assets never change: keep them for offline use (the wasm runtime included).
  if (response.ok && url.pathname.includes('/assets/')) {
    const runtime = await caches.open(RUNTIME_CACHE);
    await runtime.put(request, response.clone());
  }
  return isolated(response);
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  // Cross-origin requests (the Hugging Face Hub) and range requests go straight to the network.
  if (url.origin !== self.location.origin || request.headers.has('range')) return;
  if (!url.href.startsWith(self.registration.scope)) return;
  event.respondWith(handle(request));
});
