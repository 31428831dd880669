import { mount } from 'svelte';
import App from './App.svelte';
import './ui/theme.css';
import { registerServiceWorker } from './ui/service-worker.svelte.ts';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');
mount(App, { target });

if (import.meta.env.PROD) void registerServiceWorker();

// Browser tests of the inference worker drive it through a test-only hook (see src/lib/inference/test-hook.ts).
if (new URLSearchParams(location.search).has('inference-test')) {
  void import('./lib/inference/test-hook.ts');
}
