/**
 * The Hugging Face Hub over HTTP: pin a revision to its commit, list a repo's files, build the
 * `resolve` URL of a file, and choose the files a browser layout needs. No storage here; `fetch`
 * is injectable so tests point everything at a local server.
 */

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** One file of a repo, as the tree API lists it. */
export interface HubFile {
  /** Repo-relative, '/'-separated. */
  path: string;
  /** Bytes of the file itself (for LFS files, the object's size, not the pointer's). */
  size: number;
  /** Git blob id, or the LFS sha256 for LFS files. */
  oid?: string;
}

export class HubError extends Error {
  override name = 'HubError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export function hubBase(baseUrl: string | undefined): string {
  return (baseUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
}

const encodePath = (p: string) =>
  p
    .split('/')
    .filter((s) => s !== '')
    .map(encodeURIComponent)
    .join('/');

export function isRepoId(id: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(id) && !id.split('/').some((s) => s === '.' || s === '..');
}

/** `<base>/<repo>/resolve/<revision>/<path>`: where a file's bytes are served. */
export function resolveUrl(
  baseUrl: string | undefined,
  repoId: string,
  revision: string,
  path: string,
): string {
  return `${hubBase(baseUrl)}/${repoId}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
}

function describeStatus(res: Response, repoId: string, what: string): HubError {
  const s = res.status;
  if (s === 401 || s === 403) {
    return new HubError(
      `${repoId}: the Hub refused access to ${what} (HTTP ${s}). The repository may be private or gated: open it on the Hub, accept its terms, or choose another model.`,
      s,
    );
  }
  if (s === 404) {
    return new HubError(
      `${repoId}: ${what} was not found on the Hub (HTTP 404). Check the model id, the revision and the folder.`,
      s,
    );
  }
  return new HubError(`${repoId}: the Hub answered HTTP ${s} for ${what}.`, s);
}

async function getJson(
  fetchImpl: FetchLike,
  url: string,
  repoId: string,
  what: string,
  signal?: AbortSignal,
): Promise<{ body: unknown; res: Response }> {
  let res: Response;
  try {
    res = await fetchImpl(url, { signal: signal ?? null, headers: { accept: 'application/json' } });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new HubError(
      `Could not reach the Hub at ${new URL(url).origin} for ${what}: ${(e as Error).message}. Check the connection (or the Hub address).`,
    );
  }
  if (!res.ok) throw describeStatus(res, repoId, what);
  try {
    return { body: await res.json(), res };
  } catch {
    throw new HubError(`${repoId}: the Hub's answer for ${what} is not JSON.`);
  }
}

/**
 * The commit a branch or tag points at, so that every file (and every resumed Range request) comes
 * from one snapshot. Falls back to the revision as given when the Hub has no such endpoint.
 */
export async function resolveRevision(
  fetchImpl: FetchLike,
  baseUrl: string | undefined,
  repoId: string,
  revision: string,
  signal?: AbortSignal,
): Promise<string> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  const url = `${hubBase(baseUrl)}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  const { body } = await getJson(fetchImpl, url, repoId, `revision '${revision}'`, signal);
  const sha = (body as { sha?: unknown } | null)?.sha;
  return typeof sha === 'string' && sha !== '' ? sha : revision;
}

function nextLink(res: Response): string | null {
  const link = res.headers.get('link');
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m?.[1]) return m[1];
  }
  return null;
}

/** Every file under `folder` (recursively), following the tree API's pagination. */
export async function listRepoFiles(
  fetchImpl: FetchLike,
  baseUrl: string | undefined,
  repoId: string,
  revision: string,
  folder = '',
  signal?: AbortSignal,
): Promise<HubFile[]> {
  const sub = encodePath(folder);
  let url: string | null =
    `${hubBase(baseUrl)}/api/models/${repoId}/tree/${encodeURIComponent(revision)}` +
    (sub ? `/${sub}` : '') +
    '?recursive=true';
  const out: HubFile[] = [];
  for (let page = 0; url !== null; page++) {
    if (page > 1000) throw new HubError(`${repoId}: the file list does not end (over 1000 pages).`);
    const { body, res } = await getJson(
      fetchImpl,
      url,
      repoId,
      folder ? `the folder '${folder}'` : 'the file list',
      signal,
    );
    if (!Array.isArray(body)) throw new HubError(`${repoId}: the file list is not a JSON array.`);
    for (const e of body as unknown[]) {
      const entry = e as {
        type?: unknown;
        path?: unknown;
        size?: unknown;
        oid?: unknown;
        lfs?: unknown;
      };
      if (entry.type !== 'file' || typeof entry.path !== 'string') continue;
      const lfs = entry.lfs as { size?: unknown; oid?: unknown } | undefined;
      const size = typeof lfs?.size === 'number' ? lfs.size : entry.size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw new HubError(`${repoId}: the file list gives no valid size for '${entry.path}'.`);
      }
      const f: HubFile = { path: entry.path, size };
      const oid = typeof lfs?.oid === 'string' ? lfs.oid : entry.oid;
      if (typeof oid === 'string') f.oid = oid;
      out.push(f);
    }
    const next = nextLink(res);
    url = next ? new URL(next, url).href : null;
  }
  return out;
}

// ---------------------------------------------------------------- which files a layout needs

/** `web`: the transformers.js export; `genai`: an onnxruntime-genai folder. */
export type HubLayout = 'web' | 'genai';
/** Web-layout weight variant: q4f16 runs only on WebGPU adapters with `shader-f16`. */
export type WebDtype = 'q4' | 'q4f16';

export interface LayoutRequest {
  layout: HubLayout | 'auto';
  /** Folder inside the repo holding the model ('' for the root). */
  subfolder?: string;
  /** Web layout: the variant wanted, and whether the other one may stand in when it is absent. */
  dtype?: WebDtype;
  dtypeFallback?: boolean;
}

export interface LayoutSelection {
  layout: HubLayout;
  /** Web layout only. */
  dtype?: WebDtype;
  /** The model folder inside the repo, '' or ending in '/'. */
  root: string;
  /** The files to download (repo paths), in download order: small files first. */
  files: HubFile[];
  totalBytes: number;
}

const TOKENIZER_REQUIRED = ['tokenizer.json', 'tokenizer_config.json'];
const TOKENIZER_OPTIONAL = ['special_tokens_map.json', 'added_tokens.json'];

function normFolder(subfolder: string | undefined): string {
  const s = (subfolder ?? '').replace(/^\/+|\/+$/g, '');
  if (s.split('/').some((p) => p === '..')) throw new HubError(`Invalid folder '${subfolder}'.`);
  return s === '' ? '' : `${s}/`;
}

function select(
  byPath: Map<string, HubFile>,
  root: string,
  required: string[],
  optional: string[],
  what: string,
): HubFile[] {
  const missing = required.filter((p) => !byPath.has(root + p));
  if (missing.length > 0) {
    throw new HubError(
      `The ${what} is incomplete: ${missing.map((m) => root + m).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing.`,
    );
  }
  return [...required, ...optional]
    .filter((p) => byPath.has(root + p))
    .map((p) => byPath.get(root + p)!);
}

function webGraphs(byPath: Map<string, HubFile>, root: string, dtype: WebDtype): HubFile[] {
  const graph = `${root}onnx/model_${dtype}.onnx`;
  if (!byPath.has(graph)) return [];
  // External data: model_q4.onnx_data, then _data_1, _data_2 ... for files split under 2 GiB.
  const data = new RegExp(
    `^${(root + `onnx/model_${dtype}`).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.onnx(_data(_\\d+)?|\\.data)$`,
  );
  const extra = [...byPath.keys()].filter((p) => data.test(p)).sort();
  return [graph, ...extra].map((p) => byPath.get(p)!);
}

function detectLayout(
  byPath: Map<string, HubFile>,
  inFolder: HubFile[],
  root: string,
  where: string,
): HubLayout {
  if (byPath.has(`${root}genai_config.json`)) return 'genai';
  if (byPath.has(`${root}config.json`) && inFolder.some((f) => f.path.startsWith(`${root}onnx/`)))
    return 'web';
  throw new HubError(
    `${where} holds neither an onnxruntime-genai model (genai_config.json) nor a transformers.js ONNX export (config.json and onnx/). Pick the folder that holds the ONNX files.`,
  );
}

/**
 * Chooses the files of one model folder: for the web layout config.json, generation_config.json,
 * the tokenizer files and one `onnx/model_<dtype>.onnx` with its external data; for the genai
 * layout genai_config.json, the folder's .onnx graphs and their .onnx.data, and the tokenizer.
 * `auto` takes genai when the folder has a genai_config.json.
 */
export function selectLayoutFiles(all: HubFile[], req: LayoutRequest): LayoutSelection {
  const root = normFolder(req.subfolder);
  const inFolder = all.filter((f) => f.path.startsWith(root));
  const byPath = new Map(inFolder.map((f) => [f.path, f]));
  const where = root === '' ? 'the repository' : `the folder '${root.slice(0, -1)}'`;
  const layout = req.layout !== 'auto' ? req.layout : detectLayout(byPath, inFolder, root, where);
  let files: HubFile[];
  let dtype: WebDtype | undefined;
  if (layout === 'web') {
    const want = req.dtype ?? 'q4';
    const other: WebDtype = want === 'q4' ? 'q4f16' : 'q4';
    let graphs = webGraphs(byPath, root, want);
    dtype = want;
    if (graphs.length === 0 && req.dtypeFallback) {
      graphs = webGraphs(byPath, root, other);
      dtype = other;
    }
    if (graphs.length === 0) {
      const present = inFolder
        .filter((f) => /\/?onnx\/[^/]+\.onnx$/.test(f.path))
        .map((f) => f.path.slice(root.length));
      throw new HubError(
        `${where} has no onnx/model_${want}.onnx (the ${want} weights)${req.dtypeFallback ? ` nor onnx/model_${other}.onnx` : ''}. ` +
          (present.length > 0
            ? `It has: ${present.join(', ')}.`
            : 'It has no ONNX graph under onnx/.'),
      );
    }
    const meta = select(
      byPath,
      root,
      ['config.json', ...TOKENIZER_REQUIRED],
      ['generation_config.json', ...TOKENIZER_OPTIONAL],
      `transformers.js export in ${where}`,
    );
    files = [...meta, ...graphs];
  } else {
    const direct = inFolder.filter((f) => !f.path.slice(root.length).includes('/'));
    const graphs = direct.filter((f) => f.path.endsWith('.onnx'));
    if (graphs.length === 0) {
      throw new HubError(`The onnxruntime-genai model in ${where} has no .onnx graph.`);
    }
    const data = direct.filter((f) => /\.onnx(\.data|_data)$/.test(f.path));
    const meta = select(
      byPath,
      root,
      ['genai_config.json', ...TOKENIZER_REQUIRED],
      TOKENIZER_OPTIONAL,
      `onnxruntime-genai model in ${where}`,
    );
    const byName = (a: HubFile, b: HubFile) => a.path.localeCompare(b.path);
    files = [...meta, ...graphs.sort(byName), ...data.sort(byName)];
  }
  const sel: LayoutSelection = {
    layout,
    root,
    files,
    totalBytes: files.reduce((n, f) => n + f.size, 0),
  };
  if (dtype) sel.dtype = dtype;
  return sel;
}
