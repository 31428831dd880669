// A CPU decoder helper thread in Node (worker_threads), for tests and the bench.
import { parentPort } from 'node:worker_threads';
import { serveThread, type ThreadInit } from '../../src/lib/inference/cpu/threads.ts';

parentPort!.once('message', (init: ThreadInit) => {
  serveThread(init, (m) => parentPort!.postMessage(m));
});
