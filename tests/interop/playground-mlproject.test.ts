// Prompt-evaluation projects exported by the app, read by MLflow's own MLproject loader (what
// `mlflow run` uses), in MLflow 3.x and 2.x: the same name, entry points, parameter types and
// defaults, and the same rendered command for the same parameter values.
import 'fake-indexeddb/auto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/lib/store/db.ts';
import { writeMLproject } from '../../src/lib/mlflow/mlproject.ts';
import {
  createProject,
  exportProjectZip,
  prepareEvaluation,
  projectSpec,
  saveProjectFile,
} from '../../src/lib/services/projects.ts';
import { PY, removeTempDirs, runPythonJson, tempDir, type Flavour } from './support/python.ts';

afterAll(() => removeTempDirs());

interface Loaded {
  name: string;
  env_type: string;
  command: string;
  entry_points: Record<
    string,
    { command: string; parameters: Record<string, { type: string; default: unknown }> }
  >;
}

for (const flavour of ['mlflow3', 'mlflow2'] as Flavour[]) {
  describe.skipIf(!PY[flavour])(`an exported evaluation project, read by ${flavour}`, () => {
    it('parses to the same entry points and renders the same command', async () => {
      const db = await openDatabase({ name: `mlproject-interop-${flavour}` });
      const project = await createProject(db, {
        name: 'Capitals',
        rows: [{ prompt: 'Capital of France?', expected: 'Paris' }],
      });
      // Values that YAML 1.1 (PyYAML) and shell quoting could get wrong.
      const spec = projectSpec(project);
      spec.name = 'yes';
      const main = spec.entryPoints[0]!;
      main.parameters.push({ name: 'stop', type: 'string', default: 'no' });
      main.parameters.push({ name: 'limit', type: 'int', default: 0 });
      spec.entryPoints.push({
        name: 'quick',
        parameters: [{ name: 'max_tokens', type: 'int', default: 8 }],
        command: 'python evaluate.py --max-tokens {max_tokens} --literal {{braces}}',
      });
      const saved = await saveProjectFile(db, project.id, 'MLproject', writeMLproject(spec));

      const dir = tempDir('project');
      const zip = unzipSync(new Uint8Array(await (await exportProjectZip(saved)).arrayBuffer()));
      for (const [path, bytes] of Object.entries(zip)) {
        const file = join(dir, path);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, bytes);
      }
      const root = join(dir, 'Capitals');
      const values = {
        system_prompt: 'It\'s "quoted" & $HOME',
        temperature: '0.7',
        max_tokens: '5',
      };
      const loaded = await runPythonJson<Loaded>(flavour, 'load_mlproject.py', [
        root,
        'main',
        JSON.stringify(values),
      ]);
      expect(loaded.name).toBe('yes');
      expect(loaded.env_type).toBe('python_env');
      const app = projectSpec(saved);
      expect(Object.keys(loaded.entry_points)).toEqual(app.entryPoints.map((e) => e.name));
      for (const ep of app.entryPoints) {
        const py = loaded.entry_points[ep.name]!;
        expect(py.command).toBe(ep.command);
        expect(
          Object.entries(py.parameters).map(([name, p]) => ({
            name,
            type: p.type,
            default: p.default,
          })),
        ).toEqual(
          ep.parameters.map((p) => ({ name: p.name, type: p.type, default: p.default ?? null })),
        );
      }
      // MLflow makes `path` parameters absolute; otherwise the commands agree character for character.
      const prep = prepareEvaluation(saved, 'main', values, 'chat');
      expect(loaded.command).toBe(
        prep.command.replace('--dataset data.jsonl', `--dataset ${join(root, 'data.jsonl')}`),
      );
      db.close();
    });
  });
}
