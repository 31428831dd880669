import { parseDocument, YAMLParseError } from 'yaml';
import { dumpPyYaml } from './pyyaml.ts';
import { PyFloat } from './pyjson.ts';

/**
 * The MLproject file (MLflow Projects): a name, at most one environment, and entry points with
 * typed parameters and a command template. Reading follows mlflow/projects/_project_spec.py;
 * writing produces YAML that `mlflow run` parses back to the same project.
 */

export type ParameterValue = string | number | boolean | null;

export interface MLprojectParameter {
  name: string;
  /** `string`, `float`, `int`, `path`, `uri`; other names pass through unchecked, as in MLflow. */
  type: string;
  /** Absent when the parameter has no default (then it is required). */
  default?: ParameterValue;
}

export interface MLprojectEntryPoint {
  name: string;
  parameters: MLprojectParameter[];
  command: string;
}

export interface MLproject {
  name?: string;
  pythonEnv?: string;
  condaEnv?: string;
  dockerEnv?: Record<string, unknown>;
  entryPoints: MLprojectEntryPoint[];
  /** Keys this app does not interpret (databricks_spark_job, ...), kept in file order. */
  extra: Record<string, unknown>;
}

export class MLprojectError extends Error {
  override name = 'MLprojectError';
  constructor(
    message: string,
    readonly file = 'MLproject',
    readonly line?: number,
    readonly key?: string,
  ) {
    super(
      `${file}${line !== undefined ? `:${line}` : ''}: ${key ? `key '${key}': ` : ''}${message}`,
    );
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (isObj(v)) return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const SCALAR = (v: unknown): v is ParameterValue =>
  v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** The file name MLflow looks for, matched case-insensitively. */
export function isMLprojectFileName(name: string): boolean {
  return name.toLowerCase() === 'mlproject';
}

export function parseMLproject(text: string, file = 'MLproject'): MLproject {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const err = doc.errors[0];
  if (err) {
    const line = err instanceof YAMLParseError ? err.linePos?.[0]?.line : undefined;
    throw new MLprojectError(`not valid YAML (${err.message.split('\n')[0]})`, file, line);
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) return { entryPoints: [], extra: {} };
  if (!isObj(raw))
    throw new MLprojectError(`expected a mapping at the top level, got ${describe(raw)}`, file);
  const project: MLproject = { entryPoints: [], extra: {} };
  const fail = (key: string, expected: string, got: unknown): never => {
    throw new MLprojectError(`expected ${expected}, got ${describe(got)}`, file, undefined, key);
  };
  for (const [key, value] of Object.entries(raw)) {
    switch (key) {
      case 'name':
        if (value === null) break;
        if (typeof value !== 'string' && typeof value !== 'number') fail(key, 'a string', value);
        project.name = String(value);
        break;
      case 'python_env':
        if (typeof value !== 'string') fail(key, 'the path of a python_env.yaml', value);
        project.pythonEnv = value as string;
        break;
      case 'conda_env':
        if (typeof value !== 'string') fail(key, 'the path of a conda.yaml', value);
        project.condaEnv = value as string;
        break;
      case 'docker_env':
        if (!isObj(value) || typeof value.image !== 'string')
          fail(key, "a mapping with an 'image'", value);
        project.dockerEnv = value as Record<string, unknown>;
        break;
      case 'entry_points':
        if (value === null) break;
        if (!isObj(value)) fail(key, 'a mapping of entry point name to its definition', value);
        for (const [name, ep] of Object.entries(value as Record<string, unknown>)) {
          project.entryPoints.push(parseEntryPoint(name, ep, file));
        }
        break;
      default:
        project.extra[key] = value;
    }
  }
  const envs = ['python_env', 'conda_env', 'docker_env'].filter((k) => k in raw);
  if (envs.length > 1) {
    throw new MLprojectError(
      `only one of python_env, conda_env and docker_env may be given, found ${envs.join(', ')}`,
      file,
    );
  }
  return project;
}

function parseEntryPoint(name: string, raw: unknown, file: string): MLprojectEntryPoint {
  const where = `entry_points.${name}`;
  if (!isObj(raw)) {
    throw new MLprojectError(
      `expected a mapping with 'command' and 'parameters', got ${describe(raw)}`,
      file,
      undefined,
      where,
    );
  }
  if (typeof raw.command !== 'string' || raw.command.trim() === '') {
    throw new MLprojectError(
      `expected a command string, got ${describe(raw.command)}`,
      file,
      undefined,
      `${where}.command`,
    );
  }
  const parameters: MLprojectParameter[] = [];
  const params = raw.parameters ?? {};
  if (!isObj(params)) {
    throw new MLprojectError(
      `expected a mapping of parameter name to type, got ${describe(params)}`,
      file,
      undefined,
      `${where}.parameters`,
    );
  }
  for (const [pname, spec] of Object.entries(params)) {
    const key = `${where}.parameters.${pname}`;
    if (typeof spec === 'string') parameters.push({ name: pname, type: spec });
    else if (spec === null) parameters.push({ name: pname, type: 'string' });
    else if (isObj(spec)) {
      const type = spec.type ?? 'string';
      if (typeof type !== 'string')
        throw new MLprojectError(
          `expected a type name, got ${describe(type)}`,
          file,
          undefined,
          key,
        );
      const p: MLprojectParameter = { name: pname, type };
      if ('default' in spec) {
        if (!SCALAR(spec.default)) {
          throw new MLprojectError(
            `expected a scalar default, got ${describe(spec.default)}`,
            file,
            undefined,
            `${key}.default`,
          );
        }
        p.default = spec.default;
      }
      parameters.push(p);
    } else {
      throw new MLprojectError(
        `expected a type name or {type, default}, got ${describe(spec)}`,
        file,
        undefined,
        key,
      );
    }
  }
  return { name, parameters, command: raw.command };
}

function defaultValue(p: MLprojectParameter): unknown {
  // A float parameter keeps its float form (0.0, not 0) so the file reads like one MLflow wrote.
  if (p.type === 'float' && typeof p.default === 'number') return new PyFloat(p.default);
  return p.default;
}

/** YAML that `mlflow run` parses back into the same project (PyYAML-compatible scalars). */
export function writeMLproject(project: MLproject): string {
  const doc: Record<string, unknown> = {};
  if (project.name !== undefined) doc.name = project.name;
  if (project.pythonEnv !== undefined) doc.python_env = project.pythonEnv;
  if (project.condaEnv !== undefined) doc.conda_env = project.condaEnv;
  if (project.dockerEnv !== undefined) doc.docker_env = project.dockerEnv;
  const eps: Record<string, unknown> = {};
  for (const ep of project.entryPoints) {
    const parameters: Record<string, unknown> = {};
    for (const p of ep.parameters) {
      parameters[p.name] =
        p.default === undefined ? { type: p.type } : { type: p.type, default: defaultValue(p) };
    }
    eps[ep.name] = { parameters, command: ep.command };
  }
  doc.entry_points = eps;
  Object.assign(doc, project.extra);
  return dumpPyYaml(doc, { sortKeys: false, allowUnicode: true });
}

export interface ResolvedParameters {
  /** Declared parameters, converted to their type, defaults filled in. */
  values: Record<string, string | number>;
  /** Given values that the entry point does not declare (MLflow appends them as --key value). */
  extra: Record<string, string>;
}

function isUri(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(s);
}

/**
 * MLflow's parameter resolution for `mlflow run -P k=v`: every declared parameter needs a value
 * or a default; float/int values are converted (and rejected when they do not parse); uri must
 * look like one. Errors name the entry point and the parameter.
 */
export function resolveParameters(
  ep: MLprojectEntryPoint,
  given: Record<string, ParameterValue | undefined>,
): ResolvedParameters {
  const values: Record<string, string | number> = {};
  const missing: string[] = [];
  for (const p of ep.parameters) {
    const raw = given[p.name] ?? p.default;
    if (raw === undefined || raw === null || (raw === '' && p.default === undefined)) {
      missing.push(p.name);
      continue;
    }
    values[p.name] = convertParameter(ep.name, p, raw);
  }
  if (missing.length > 0) {
    throw new MLprojectError(
      `no value given for missing parameters: ${missing.map((m) => `'${m}'`).join(', ')}`,
      'MLproject',
      undefined,
      `entry_points.${ep.name}`,
    );
  }
  const declared = new Set(ep.parameters.map((p) => p.name));
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) {
    if (!declared.has(k) && v !== undefined && v !== null) extra[k] = String(v);
  }
  return { values, extra };
}

function convertParameter(
  entry: string,
  p: MLprojectParameter,
  raw: string | number | boolean,
): string | number {
  const bad = (expected: string): never => {
    throw new MLprojectError(
      `parameter '${p.name}' of type ${p.type} got ${JSON.stringify(raw)}, expected ${expected}`,
      'MLproject',
      undefined,
      `entry_points.${entry}.parameters.${p.name}`,
    );
  };
  const text = String(raw).trim();
  switch (p.type) {
    case 'float': {
      const n = typeof raw === 'number' ? raw : Number(text);
      if (text === '' || !Number.isFinite(n)) bad('a number');
      return n;
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : Number(text);
      if (text === '' || !Number.isInteger(n)) bad('an integer');
      return n;
    }
    case 'uri':
      if (!isUri(text) && !text.startsWith('/') && !text.startsWith('.')) bad('a URI');
      return String(raw);
    default:
      return typeof raw === 'boolean' ? (raw ? 'True' : 'False') : String(raw);
  }
}

/** Python's shlex.quote. */
export function shellQuote(s: string): string {
  if (s === '') return "''";
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

/** Python's str() of a converted value: a whole float prints as 1.0. */
function pyStr(v: string | number, type: string | undefined): string {
  if (typeof v === 'number' && type === 'float' && Number.isInteger(v)) return `${v}.0`;
  return String(v);
}

/**
 * The command `mlflow run` would execute: `{param}` replaced by the shell-quoted value (`{{`/`}}`
 * are literal braces, as in str.format), undeclared parameters appended as `--key value`.
 */
export function renderCommand(ep: MLprojectEntryPoint, resolved: ResolvedParameters): string {
  let out = '';
  const cmd = ep.command;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (c === '{' && cmd[i + 1] === '{') {
      out += '{';
      i++;
    } else if (c === '}' && cmd[i + 1] === '}') {
      out += '}';
      i++;
    } else if (c === '{') {
      const end = cmd.indexOf('}', i);
      if (end < 0)
        throw new MLprojectError(
          "single '{' encountered in the command",
          'MLproject',
          undefined,
          `entry_points.${ep.name}.command`,
        );
      const name = cmd.slice(i + 1, end);
      const v = resolved.values[name];
      if (v === undefined) {
        throw new MLprojectError(
          `the command uses {${name}}, which is not a declared parameter`,
          'MLproject',
          undefined,
          `entry_points.${ep.name}.command`,
        );
      }
      out += shellQuote(pyStr(v, ep.parameters.find((p) => p.name === name)?.type));
      i = end;
    } else out += c;
  }
  for (const [k, v] of Object.entries(resolved.extra)) out += ` --${k} ${shellQuote(v)}`;
  return out;
}
