import { expect, test } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { seriousA11yViolations } from './support/axe.ts';
import {
  buildChatModelZip,
  buildGenaiModelZip,
  diffFiles,
  extractZip,
  readZip,
} from './support/model-zips.ts';
import { exportVersion, importThroughUi } from './support/models-ui.ts';

const shots = process.env.UPDATE_SCREENSHOTS ? 'docs/screenshots' : 'test-results';

test('a transformers llm/v1/chat model zip imports, shows the chat signature, and exports byte for byte', async ({
  page,
}) => {
  const seed = await buildChatModelZip();
  mkdirSync(shots, { recursive: true });
  await page.setViewportSize({ width: 1200, height: 800 });
  await importThroughUi(page, { zip: seed.path }, 'phi3-chat', '1', {
    screenshot: `${shots}/models-import-dialog.png`,
  });

  // The chat signature: messages in (an array of objects with a required role), OpenAI choices out.
  const inputs = page.getByTestId('signature-inputs');
  await expect(inputs).toContainText('messages');
  await expect(inputs).toContainText('Array(Object)');
  const messages = inputs.getByRole('row').filter({ hasText: 'messages' }).first();
  await expect(messages.getByRole('listitem').filter({ hasText: /^role/ }).first()).toContainText(
    'required',
  );
  await expect(
    messages
      .getByRole('listitem')
      .filter({ hasText: /^content/ })
      .first(),
  ).toContainText('optional');
  const outputs = page.getByTestId('signature-outputs');
  for (const col of ['id', 'object', 'created', 'choices', 'usage'])
    await expect(outputs).toContainText(col);
  await expect(outputs.getByRole('row').filter({ hasText: 'choices' })).toContainText(
    'finish_reason',
  );

  const summary = page.getByTestId('mlmodel-summary');
  await expect(summary).toContainText('transformers');
  await expect(summary).toContainText('llm/v1/chat');
  await expect(page.getByTestId('mlmodel')).toContainText('microsoft/Phi-3-mini-4k-instruct');
  await expect(page.getByTestId('model-files')).toContainText('model/onnx/model_q4.onnx');
  await expect(page.getByTestId('model-files')).toContainText(
    'components/tokenizer/tokenizer.json',
  );
  await expect(page.getByRole('link', { name: 'Serve in Playground' })).toHaveAttribute(
    'href',
    '#/playground?model=phi3-chat&version=1',
  );
  expect(await seriousA11yViolations(page)).toEqual([]);
  await page.screenshot({ path: `${shots}/models-version-chat.png`, fullPage: true });

  // Export: every file comes back exactly as it went in.
  const exported = await exportVersion(page, 'phi3-chat-v1.zip');
  expect(diffFiles(seed.files, readZip(exported))).toEqual([]);

  // Re-import the exported zip as the next version of the same model: same files again.
  await importThroughUi(page, { zip: exported }, 'phi3-chat', '2');
  await expect(page.getByTestId('signature-inputs')).toContainText('messages');
  const again = await exportVersion(page, 'phi3-chat-v2.zip');
  expect(diffFiles(seed.files, readZip(again))).toEqual([]);

  await page.goto('./#/models/phi3-chat');
  await expect(page.getByTestId('versions-table').getByRole('row')).toHaveCount(3);
  expect(await seriousA11yViolations(page)).toEqual([]);
});

test('a python_function model with an onnxruntime-genai folder imports as {prompt} -> string, and round-trips through a folder import', async ({
  page,
}) => {
  const seed = await buildGenaiModelZip();
  await importThroughUi(page, { zip: seed.path }, 'phi3-genai', '1');

  const inputs = page.getByTestId('signature-inputs');
  await expect(inputs.getByRole('row')).toHaveCount(2);
  await expect(inputs.getByRole('row').nth(1)).toContainText(/prompt\s*string\s*required/);
  const outputs = page.getByTestId('signature-outputs');
  await expect(outputs.getByRole('row')).toHaveCount(2);
  await expect(outputs.getByRole('row').nth(1)).toContainText(/\(unnamed\)\s*string\s*required/);
  await expect(page.getByTestId('signature')).toContainText('No params.');

  await expect(page.getByTestId('input-example')).toContainText('What is MLflow?');
  await expect(page.getByTestId('pyfunc-artifacts')).toContainText(
    'phi3-mini-onnx → artifacts/cpu-int4-rtn-block-32-acc-level-4',
  );
  await expect(page.getByTestId('mlmodel-summary')).toContainText('python_function');
  await expect(page.getByTestId('servable')).toContainText('onnxruntime-genai');
  await expect(page.getByTestId('model-files')).toContainText(
    'artifacts/cpu-int4-rtn-block-32-acc-level-4/genai_config.json',
  );
  await expect(page.getByRole('link', { name: 'Serve in Playground' })).toHaveAttribute(
    'href',
    '#/playground?model=phi3-genai&version=1',
  );
  // The raw MLmodel is shown exactly as stored.
  await page.getByText('MLmodel file', { exact: true }).click();
  await expect(page.getByTestId('mlmodel-text')).toContainText(
    'loader_module: mlflow.pyfunc.model',
  );
  expect(await seriousA11yViolations(page)).toEqual([]);
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.screenshot({ path: `${shots}/models-version-genai.png`, fullPage: true });

  const exported = await exportVersion(page, 'phi3-genai-v1.zip');
  expect(diffFiles(seed.files, readZip(exported))).toEqual([]);

  // The same model as an unpacked folder (webkitdirectory) becomes version 2, byte for byte.
  const folder = extractZip(exported, 'phi3-genai-model');
  await importThroughUi(page, { folder }, 'phi3-genai', '2');
  await expect(page.getByTestId('signature-inputs')).toContainText('prompt');
  const again = await exportVersion(page, 'phi3-genai-v2.zip');
  expect(diffFiles(seed.files, readZip(again))).toEqual([]);
});
