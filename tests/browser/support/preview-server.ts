import { spawn, type ChildProcess } from 'node:child_process';

/** Starts its own `vite preview` (so a test can take the network away by stopping it). */
export async function startPreview(port: number): Promise<{ url: string; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    'npx',
    ['vite', 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
    { stdio: 'ignore', detached: true },
  );
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`vite preview did not start on port ${port}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
  return {
    url,
    stop: async () => {
      if (child.pid) process.kill(-child.pid, 'SIGTERM');
      for (let i = 0; i < 50; i++) {
        try {
          await fetch(url);
        } catch {
          return;
        }
        await new Promise((ok) => setTimeout(ok, 100));
      }
    },
  };
}
