// Helpers of the Playground browser tests: register a model zip through the page's test hook.
import type { Page } from '@playwright/test';
import { readFileSync } from 'node:fs';

interface PlaygroundHook {
  importModelZip(zip: Blob, name: string): Promise<{ name: string; version: number }>;
}

/** Serves the zip at a fixture URL and imports it as model `name` inside the page. */
export async function registerZip(page: Page, path: string, name: string): Promise<void> {
  const url = `/__fixture-zips/${name}.zip`;
  await page.route(`**${url}`, (route) =>
    route.fulfill({ body: readFileSync(path), contentType: 'application/zip' }),
  );
  await page.waitForFunction(() => 'tabflowPlaygroundTest' in window);
  await page.evaluate(
    async ({ url, name }) => {
      const blob = await (await fetch(url)).blob();
      const hook = (window as unknown as { tabflowPlaygroundTest: PlaygroundHook })
        .tabflowPlaygroundTest;
      await hook.importModelZip(blob, name);
    },
    { url, name },
  );
}
