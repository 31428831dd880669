// A prompt session on the tiny Phi-3 in the onnxruntime-genai layout (the seed's custom pyfunc
// wrapper shape, {prompt} -> string), served in the real worker on WASM.
import { expect, test } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { buildGenaiModelZip } from './support/model-zips.ts';
import { registerZip } from './support/playground.ts';

test.use({ serviceWorkers: 'block' });
test.setTimeout(180_000);

test('prompt: raw prompt with the tokenizer chat template, greedy answer, logged as a run', async ({
  page,
}) => {
  const zip = await buildGenaiModelZip();
  await page.goto('./?test#/playground');
  await registerZip(page, zip.path, 'phi3-genai');
  await expect(page.getByTestId('model-select')).toContainText(
    'phi3-genai · v1 · prompt → string · genai',
  );
  await page.getByTestId('backend-select').selectOption('wasm');
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('backend-info')).toContainText('(genai layout, int4)', {
    timeout: 60_000,
  });
  // The CPU decoder serves the genai layout on WASM; the bar names its KV cache type.
  await expect(page.getByTestId('kv-cache')).toHaveText(/^· KV cache f(16|32), \d+ tokens$/);
  await expect(page.getByRole('tab', { name: 'Prompt' })).toHaveAttribute('aria-selected', 'true');

  await page.getByTestId('insert-template').click();
  const editor = page.getByTestId('prompt-editor');
  await expect(editor).toHaveValue(/<\|user\|>\nYour question here<\|end\|>\n<\|assistant\|>\n$/);
  const prompt =
    '<|system|>\nYou are brief.<|end|>\n<|user|>\nWhat is MLflow?<|end|>\n<|assistant|>\n';
  await editor.fill(prompt);
  await page.getByTestId('param-max_tokens').fill('6');
  await page.getByTestId('send').click();

  const answer = page.getByTestId('message-assistant');
  await expect(answer).toHaveCount(1);
  await expect(answer.getByTestId('answer-stats')).toContainText('6 completion tokens');
  await expect(page.getByTestId('message-user')).toContainText('What is MLflow?');
  await answer.getByRole('button', { name: 'View raw JSON' }).click();
  const raw = JSON.parse(await answer.getByTestId('raw-json').innerText());
  expect(raw.request).toEqual({
    inputs: { prompt: [prompt] },
    params: { max_length: 300, temperature: 0, max_tokens: 6 },
  });
  expect(typeof raw.response).toBe('string');
  const text = raw.response as string;

  // Greedy: regenerating gives the same text.
  await page.getByTestId('regenerate').click();
  await expect(answer.getByTestId('answer-stats')).toContainText('run step 1');
  await answer.getByRole('button', { name: 'View raw JSON' }).click();
  expect(JSON.parse(await answer.getByTestId('raw-json').innerText()).response).toBe(text);

  await page.setViewportSize({ width: 1440, height: 900 });
  await page.screenshot({ path: 'test-results/playground-prompt.png' });

  const run = await page.evaluate(async () => {
    const t = await (
      window as unknown as { tabflowTest: { getTracking(): Promise<any> } }
    ).tabflowTest.getTracking();
    const exp = await t.getExperimentByName('phi3-genai');
    const { runs } = await t.searchRuns({ experimentIds: [exp.experimentId] });
    const r = runs[0];
    return {
      count: runs.length,
      params: r.params,
      steps: (await t.getMetricHistory(r.info.runId, 'completion_tokens')).map(
        (m: { step: number }) => m.step,
      ),
      pair: JSON.parse(await t.readArtifactText(r.info.runId, 'completions/0000.json')),
    };
  });
  expect(run.count).toBe(1);
  expect(run.params).toMatchObject({
    mode: 'prompt',
    model_name: 'phi3-genai',
    max_length: '300',
    temperature: '0',
    max_tokens: '6',
    backend: 'wasm',
  });
  expect(run.steps).toEqual([0, 1]);
  expect(run.pair).toEqual({ request: raw.request, response: text });

  // Autolog off: the answer is kept but no run gets it.
  await page.getByTestId('autolog').uncheck();
  await page.getByTestId('regenerate').click();
  await expect(answer.getByTestId('answer-stats')).toContainText('6 completion tokens');
  await expect(answer.getByTestId('answer-stats')).not.toContainText('run step');
  const steps = await page.evaluate(async () => {
    const t = await (
      window as unknown as { tabflowTest: { getTracking(): Promise<any> } }
    ).tabflowTest.getTracking();
    const exp = await t.getExperimentByName('phi3-genai');
    const { runs } = await t.searchRuns({ experimentIds: [exp.experimentId] });
    return {
      runs: runs.length,
      steps: (await t.getMetricHistory(runs[0].info.runId, 'completion_tokens')).length,
    };
  });
  expect(steps).toEqual({ runs: 1, steps: 2 });

  // Export the conversation as JSON and import it back as a new one.
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: /^Export What is MLflow/ }).click();
  const file = await (await download).path();
  const exported = JSON.parse(readFileSync(file, 'utf8'));
  expect(exported).toMatchObject({
    format: 'tabflow.conversation/1',
    mode: 'prompt',
    messages: [
      { role: 'user', content: prompt },
      { role: 'assistant', response: text },
    ],
  });
  await page.getByTestId('conversation-import').setInputFiles(file);
  await expect(page.getByTestId('conversation-item')).toHaveCount(2);
});

test('backend override: the model loads on WebGPU and the adapter is named', async ({ page }) => {
  const zip = await buildGenaiModelZip();
  await page.goto('./?test#/playground');
  await registerZip(page, zip.path, 'phi3-genai');
  await page.getByTestId('backend-select').selectOption('webgpu');
  await page.getByTestId('load-model').click();
  await expect(page.getByTestId('backend-label')).toContainText(/^WebGPU/, { timeout: 90_000 });
  await page.getByTestId('prompt-editor').fill('<|user|>\nHello<|end|>\n<|assistant|>\n');
  await page.getByTestId('param-max_tokens').fill('4');
  await page.getByTestId('send').click();
  await expect(page.getByTestId('message-assistant').getByTestId('answer-stats')).toContainText(
    '4 completion tokens',
    { timeout: 60_000 },
  );
  await page.screenshot({ path: 'test-results/playground-prompt-webgpu.png' });
});
