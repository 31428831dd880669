// The Playground on the tiny Phi-3 (transformers llm/v1/chat model zip, web layout) in the real
// inference worker on WASM: a chat streams, stops, regenerates, and each session is an MLflow
// run with its params, per-answer metrics and artifacts; "Open in Playground" restores it.
import { expect, test, type Page } from '@playwright/test';
import { buildChatModelZip } from './support/model-zips.ts';
import { seriousA11yViolations } from './support/axe.ts';
import { registerZip } from './support/playground.ts';

test.use({ serviceWorkers: 'block' });
test.setTimeout(240_000);

interface TrackingHook {
  getTracking(): Promise<{
    getExperimentByName(n: string): Promise<{ experimentId: string } | null>;
    searchRuns(o: { experimentIds: string[]; orderBy?: string[] }): Promise<{
      runs: {
        info: { runId: string; status: string; runName: string };
        params: Record<string, string>;
        tags: Record<string, string>;
      }[];
    }>;
    getMetricHistory(runId: string, key: string): Promise<{ step: number; value: number }[]>;
    readArtifactText(runId: string, path: string): Promise<string>;
    listArtifacts(runId: string, dir?: string): Promise<{ path: string }[]>;
  }>;
}
declare global {
  interface Window {
    tabflowTest: TrackingHook;
  }
}

async function setParam(page: Page, key: string, value: string) {
  const input = page.getByTestId(`param-${key}`);
  await input.fill(value);
}

test('chat: streams, stops, regenerates, edits, and is logged as runs that reopen in the Playground', async ({
  page,
}) => {
  const zip = await buildChatModelZip();
  await page.goto('./?test#/playground');
  await expect(page.getByText('No servable model yet')).toBeVisible();
  await registerZip(page, zip.path, 'phi3-chat');

  // The registry change shows the model; load it on WASM.
  await expect(page.getByTestId('model-select')).toContainText(
    'phi3-chat · v1 · chat (llm/v1/chat) · web',
  );
  await page.getByTestId('backend-select').selectOption('wasm');
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('backend-label')).toContainText(/WASM · \d+ threads/, {
    timeout: 60_000,
  });

  // Settings validated against the llm/v1/chat signature.
  await setParam(page, 'temperature', '-1');
  await expect(page.locator('#hint-temperature')).toHaveText('must be at least 0');
  await setParam(page, 'seed', '3');
  await expect(page.locator('#hint-seed')).toContainText("not in the model's signature");
  await page.getByTestId('param-seed').fill('');
  await setParam(page, 'temperature', '0');
  await setParam(page, 'max_tokens', '8');
  await page.getByTestId('system-prompt').fill('You are brief.');

  // 1. A short answer.
  await page.getByTestId('chat-input').fill('What is MLflow?');
  await page.getByTestId('chat-input').press('Enter');
  const answers = page.getByTestId('message-assistant');
  await expect(answers).toHaveCount(1);
  await expect(answers.first().getByTestId('answer-stats')).toContainText('8 completion tokens');
  await expect(answers.first().getByTestId('answer-stats')).toContainText(/tok\/s/);
  await expect(answers.first().getByTestId('answer-stats')).toContainText(/TTFT \d+ ms/);
  const firstText = await answers.first().getByTestId('answer-content').innerText();

  // Raw OpenAI-compatible response.
  await answers.first().getByRole('button', { name: 'View raw JSON' }).click();
  const raw = JSON.parse(await answers.first().getByTestId('raw-json').innerText());
  expect(raw.request).toMatchObject({
    messages: [{ role: 'system' }, { role: 'user', content: 'What is MLflow?' }],
    max_tokens: 8,
    temperature: 0,
  });
  expect(raw.response).toMatchObject({
    object: 'chat.completion',
    model: 'phi3-chat/1',
    usage: { completion_tokens: 8 },
  });

  // 2. Regenerate: greedy, so the same text again, logged at the next step of the same run.
  await page.getByTestId('regenerate').click();
  await expect(answers).toHaveCount(1);
  await expect(answers.first().getByTestId('answer-stats')).toContainText('run step 1');
  expect(await answers.first().getByTestId('answer-content').innerText()).toBe(firstText);

  // 3. Streaming and Stop on a long answer (new settings, so a second run).
  await setParam(page, 'max_tokens', '400');
  await page.getByTestId('chat-input').fill('Tell me more');
  // The tiny model can write 400 tokens faster than a click from the test runner lands, so the
  // page itself presses Stop once the streamed answer shows a few tokens, as a user would.
  await page.evaluate(() => {
    const w = window as unknown as { __partial?: string; __streamedTokens?: number };
    const observer = new MutationObserver(() => {
      const bubble = document.querySelector('[data-testid="streaming"]');
      const n = Number(/(\d+) tokens/.exec(bubble?.textContent ?? '')?.[1] ?? 0);
      if (bubble && n >= 3) {
        w.__partial = bubble.querySelector('[data-testid="answer-content"]')?.textContent ?? '';
        w.__streamedTokens = n;
        (document.querySelector('[data-testid="stop"]') as HTMLButtonElement).click();
        observer.disconnect();
      }
    });
    observer.observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByTestId('send').click();
  const streaming = page.getByTestId('streaming');
  await page.waitForFunction(
    () => (window as unknown as { __partial?: string }).__partial !== undefined,
  );
  const partial = await page.evaluate(() => (window as unknown as { __partial: string }).__partial);
  expect(partial.length).toBeGreaterThan(0);
  await expect(streaming).toHaveCount(0);
  await expect(answers).toHaveCount(2);
  await expect(answers.nth(1)).toContainText('Stopped.');
  await expect(answers.nth(1).getByTestId('answer-stats')).toContainText('finish: stopped');
  const stoppedTokens = Number(
    /(\d+) completion tokens/.exec(
      await answers.nth(1).getByTestId('answer-stats').innerText(),
    )![1],
  );
  expect(stoppedTokens).toBeLessThan(400);

  // 4. Edit the first message and resend: later turns are replaced.
  await setParam(page, 'max_tokens', '8');
  await page.getByTestId('message-user').first().getByRole('button', { name: 'Edit' }).click();
  await page.getByRole('textbox', { name: 'Edit message' }).fill('What is a run?');
  await page.getByRole('button', { name: 'Save and resend' }).click();
  await expect(page.getByTestId('message-user')).toHaveCount(1);
  await expect(page.getByTestId('message-user').first()).toContainText('What is a run?');
  await expect(answers).toHaveCount(1);
  await expect(answers.first().getByTestId('answer-stats')).toContainText('8 completion tokens');

  // The conversation is in the sidebar.
  await expect(page.getByTestId('conversation-item').first()).toContainText('What is MLflow?');

  await page.setViewportSize({ width: 1440, height: 900 });
  await page.screenshot({ path: 'test-results/playground-chat.png' });
  if (process.env.UPDATE_SCREENSHOTS)
    await page.screenshot({ path: 'docs/screenshots/playground-chat.png' });
  expect(await seriousA11yViolations(page)).toEqual([]);

  // The runs: experiment named after the model, params, metrics per answer, artifacts.
  const logged = await page.evaluate(async () => {
    const t = await window.tabflowTest.getTracking();
    const exp = await t.getExperimentByName('phi3-chat');
    const { runs } = await t.searchRuns({
      experimentIds: [exp!.experimentId],
      orderBy: ['attributes.start_time ASC'],
    });
    const out = [];
    for (const r of runs) {
      out.push({
        id: r.info.runId,
        experimentId: exp!.experimentId,
        status: r.info.status,
        params: r.params,
        tags: r.tags,
        tps: await t.getMetricHistory(r.info.runId, 'tokens_per_second'),
        ttft: await t.getMetricHistory(r.info.runId, 'time_to_first_token_ms'),
        completion: await t.getMetricHistory(r.info.runId, 'completion_tokens'),
        files: (await t.listArtifacts(r.info.runId, 'completions')).map((f) => f.path),
        first: JSON.parse(await t.readArtifactText(r.info.runId, 'completions/0000.json')),
        conversation: JSON.parse(await t.readArtifactText(r.info.runId, 'conversation.json')),
      });
    }
    return out;
  });
  // max_tokens 8 -> 400 -> 8: three runs (params cannot change within a run).
  expect(logged.map((r) => r.params.max_tokens)).toEqual(['8', '400', '8']);
  const [first, second] = logged;
  expect(first!.status).toBe('FINISHED');
  expect(first!.params).toMatchObject({
    model_name: 'phi3-chat',
    model_version: '1',
    backend: 'wasm',
    mode: 'chat',
    temperature: '0',
  });
  expect(first!.params.system_prompt_sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(first!.tags['mlflow.source.name']).toBe('tabflow-playground');
  expect(first!.tags['mlflow.runName']).toMatch(/^chat-/);
  expect(first!.tps.map((m) => m.step)).toEqual([0, 1]);
  expect(first!.ttft.map((m) => m.step)).toEqual([0, 1]);
  expect(first!.completion.map((m) => m.value)).toEqual([8, 8]);
  expect(first!.files).toEqual(['completions/0000.json', 'completions/0001.json']);
  expect(first!.first.response).toMatchObject({
    object: 'chat.completion',
    choices: [
      { index: 0, finish_reason: 'length', message: { role: 'assistant', content: firstText } },
    ],
  });
  expect(second!.completion[0]!.value).toBe(stoppedTokens);
  expect(second!.first.response.choices[0].message.content.length).toBeGreaterThan(0);

  // Open in Playground from the first run's page, in a fresh page load.
  await page.goto(`./?test#/experiments/${first!.experimentId}/runs/${first!.id}`);
  await page.getByRole('link', { name: 'Open in Playground' }).click();
  await expect(page).toHaveURL(new RegExp(`#/playground\\?run=${first!.id}$`));
  await expect(
    page.getByRole('status').filter({ hasText: `Restored from run ${first!.id}` }),
  ).toBeVisible();
  await expect(page.getByTestId('message-user').first()).toContainText('What is a run?');
  await expect(page.getByTestId('system-prompt')).toHaveValue('You are brief.');
  await expect(page.getByTestId('param-max_tokens')).toHaveValue('8');
});
