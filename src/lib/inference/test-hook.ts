// Test-only entry: the app loads this module only when its URL has `?inference-test`, and it
// hands the inference client and the signature adapters to browser tests as
// `window.__tabflowInference` (the app has no serving UI to drive yet).
import * as adapters from './adapters.ts';
import { InferenceClient } from './client.ts';

const hook = { InferenceClient, ...adapters };
export type InferenceTestHook = typeof hook;

(globalThis as { __tabflowInference?: InferenceTestHook }).__tabflowInference = hook;
