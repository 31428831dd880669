import { defineConfig } from 'vitest/config';

// Unit tests run in Node: pure format code, archive guards, the store on fake-indexeddb,
// and engines on onnxruntime-node. Browser tests are Playwright's (tests/browser).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          include: ['tests/unit/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
