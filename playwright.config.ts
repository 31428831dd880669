import { defineConfig } from '@playwright/test';

// Browser tests run in a real Chromium (found or installed by scripts/find-chromium.mjs and
// passed in CHROMIUM_PATH) against the production build served by `vite preview`, which sends
// COOP/COEP like the service worker does on GitHub Pages.
const executablePath = process.env.CHROMIUM_PATH;
export const PREVIEW_PORT = Number(process.env.TABFLOW_PREVIEW_PORT ?? 4173);

export default defineConfig({
  testDir: 'tests/browser',
  testMatch: '**/*.spec.ts',
  timeout: 120_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: process.env.CI ? 1 : 0,
  reporter: [['list'], ['json', { outputFile: 'test-results/browser.json' }]],
  use: {
    baseURL: `http://127.0.0.1:${PREVIEW_PORT}/`,
    trace: 'retain-on-failure',
    launchOptions: {
      ...(executablePath ? { executablePath } : {}),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--enable-unsafe-webgpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
  webServer: {
    command: `npx vite preview --host 127.0.0.1 --port ${PREVIEW_PORT} --strictPort`,
    url: `http://127.0.0.1:${PREVIEW_PORT}/`,
    reuseExistingServer: false,
    timeout: 60_000,
  },
});
