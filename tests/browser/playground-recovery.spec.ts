// The Playground after its inference worker crashes: a message of its own with the ways
// forward, the conversation kept on screen, and "Reload the model" bringing answers back
// without reloading the page.
import { expect, test } from '@playwright/test';
import { buildChatModelZip } from './support/model-zips.ts';
import { registerZip } from './support/playground.ts';

test.use({ serviceWorkers: 'block' });
test.setTimeout(240_000);

interface CrashHook {
  simulateCrash(mode: 'uncaught' | 'hang'): void;
}

test('a crashed worker is reported with its ways forward, and reloading the model brings answers back', async ({
  page,
}) => {
  const zip = await buildChatModelZip();
  await page.goto('./?test#/playground');
  await registerZip(page, zip.path, 'phi3-chat');
  await expect(page.getByTestId('model-select')).toContainText('phi3-chat · v1');
  await page.getByTestId('backend-select').selectOption('wasm');
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('backend-label')).toContainText(/WASM · \d+ threads/, {
    timeout: 60_000,
  });
  await page.getByTestId('param-temperature').fill('0');
  await page.getByTestId('param-max_tokens').fill('6');

  await page.getByTestId('chat-input').fill('What is MLflow?');
  await page.getByTestId('chat-input').press('Enter');
  const answers = page.getByTestId('message-assistant');
  await expect(answers).toHaveCount(1);
  await expect(answers.first().getByTestId('answer-stats')).toContainText('6 completion tokens');

  // A marker that a page reload would wipe.
  await page.evaluate(() => ((window as unknown as { recoveryMarker: number }).recoveryMarker = 1));

  await page.evaluate(() =>
    (window as unknown as { tabflowPlaygroundTest: CrashHook }).tabflowPlaygroundTest.simulateCrash(
      'uncaught',
    ),
  );
  const failure = page.getByTestId('load-error');
  await expect(failure).toBeVisible({ timeout: 30_000 });
  await expect(failure).toHaveAttribute('data-code', 'worker-crashed');
  await expect(failure).toContainText('The inference worker crashed.');
  await expect(failure).toContainText('The conversation is kept');
  await expect(failure).toContainText(/Simulated worker crash/);
  await expect(failure.getByRole('button', { name: 'Reload the model' })).toBeVisible();
  await expect(failure.getByRole('button', { name: /^Switch backend/ })).toBeVisible();

  // The conversation stays; sending waits for a model.
  await expect(page.getByTestId('message-user')).toHaveCount(1);
  await expect(answers).toHaveCount(1);
  await expect(page.getByTestId('chat-input')).toBeEditable();

  await failure.getByRole('button', { name: 'Reload the model' }).click();
  await expect(page.getByTestId('backend-label')).toContainText(/WASM · \d+ threads/, {
    timeout: 60_000,
  });
  await expect(page.getByTestId('load-error')).toHaveCount(0);

  await page.getByTestId('chat-input').fill('And what is a run?');
  await page.getByTestId('chat-input').press('Enter');
  await expect(answers).toHaveCount(2);
  await expect(answers.nth(1).getByTestId('answer-stats')).toContainText('6 completion tokens');
  await expect(answers.first().getByTestId('answer-stats')).toContainText('6 completion tokens');
  expect(
    await page.evaluate(() => (window as unknown as { recoveryMarker?: number }).recoveryMarker),
  ).toBe(1);
});
