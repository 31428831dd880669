// Model folders on disk, handed to the page as if served: the browser specs fetch them as Blobs.
import type { Page } from '@playwright/test';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every file below `root` (dot-files left out), as '/'-separated paths relative to it. */
export function listFiles(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(root, p));
    else if (!name.startsWith('.')) out.push(relative(root, p).split('\\').join('/'));
  }
  return out;
}

/**
 * Serves files under the URL path `prefix` from `dir`; with a function, the first path segment
 * after the prefix picks the folder (`/__tiny-phi3/genai/...`). Paths with `..` get a 404.
 */
export async function serveFolder(
  page: Page,
  prefix: string,
  dir: string | ((first: string) => string),
): Promise<void> {
  await page.route(`**${prefix}**`, async (route) => {
    const path = new URL(route.request().url()).pathname;
    let rest = decodeURIComponent(path.slice(path.indexOf(prefix) + prefix.length)).split('/');
    let root: string;
    if (typeof dir === 'string') root = dir;
    else {
      root = dir(rest[0]!);
      rest = rest.slice(1);
    }
    const file = join(root, ...rest);
    if (rest.includes('..') || !existsSync(file)) return route.fulfill({ status: 404 });
    await route.fulfill({ body: readFileSync(file), contentType: 'application/octet-stream' });
  });
}
