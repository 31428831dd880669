// Entry of a CPU decoder helper thread (a module worker): waits for its init message, then
// serves jobs from the shared control block until told to stop.
import { serveThread, type ThreadInit } from './threads.ts';

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<ThreadInit>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (e) => {
  scope.onmessage = null;
  serveThread(e.data, (m) => scope.postMessage(m));
};
