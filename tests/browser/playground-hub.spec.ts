// The Playground's empty state offers a Hub download; the downloaded model is then served there.
import { expect, test } from '@playwright/test';
import { ensureTinyPhi3 } from '../helpers/tiny-phi3.ts';
import {
  folderAsRepoFiles,
  repoOf,
  startHubServer,
  type HubServer,
} from '../helpers/hub-server.ts';

test.use({ serviceWorkers: 'block' });

let server: HubServer;

test.beforeAll(async () => {
  const tiny = await ensureTinyPhi3();
  server = await startHubServer({ 'tiny/phi3-web': repoOf(folderAsRepoFiles(tiny.web), 'web') });
});

test.afterAll(async () => {
  await server?.close();
});

test('a fresh Playground downloads a Hub model and opens it ready to serve', async ({ page }) => {
  await page.goto('./?test#/playground');
  await expect(page.getByTestId('empty-state')).toContainText('No servable model yet');
  await page.getByText('Or download Phi-3 from the Hugging Face Hub').click();
  const hub = page.getByRole('region', { name: 'Download from the Hugging Face Hub' });
  await hub.getByText('Hub address').click();
  await hub.getByLabel('Hub URL').fill(server.url);
  await hub.getByLabel('Hub URL').dispatchEvent('change');
  await hub.getByRole('textbox', { name: 'Model id' }).fill('tiny/phi3-web');
  await hub.getByRole('textbox', { name: 'Folder in the repository' }).fill('');
  await hub.getByLabel('Weights').selectOption('q4');
  await hub.getByRole('textbox', { name: 'Registered model name' }).fill('phi3-from-hub');
  await hub.getByRole('button', { name: 'Download' }).click();

  await expect(page).toHaveURL(/#\/playground\?model=phi3-from-hub&version=1$/, {
    timeout: 60_000,
  });
  await expect(page.getByTestId('empty-state')).toHaveCount(0);
  await expect(page.getByRole('combobox', { name: 'Model version' })).toContainText(
    'phi3-from-hub',
  );
});
