import { defineConfig } from 'vitest/config';

// Interop tests: Node-side code of the app against real Python MLflow and onnxruntime-genai.
// Run through scripts/test-interop.mjs, which prepares the virtual environments and passes
// their interpreters in TABFLOW_PY_MLFLOW3 / TABFLOW_PY_MLFLOW2.
export default defineConfig({
  test: {
    name: 'interop',
    environment: 'node',
    include: ['tests/interop/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Each file starts several Python processes; two files at a time suit small CI machines.
    maxWorkers: 2,
  },
});
