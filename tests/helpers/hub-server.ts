// A stand-in for the Hugging Face Hub on 127.0.0.1, serving local folders as model repos:
// `api/models/<id>/revision/<rev>`, `api/models/<id>/tree/<rev>/<path>?recursive=true` (paginated
// with a Link header when pageSize is set) and `<id>/resolve/<rev>/<path>` with Range support.
// It can cut a response off part-way (a dropped connection), ignore Range, or go slowly, and it
// records every request so tests can check what the client asked for. Every response carries
// CORS and Cross-Origin-Resource-Policy headers, so a cross-origin isolated page may fetch it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { AddressInfo } from 'node:net';

export interface HubRepo {
  /** Repo path -> bytes. */
  files: Map<string, Uint8Array>;
  /** The commit `main` resolves to. */
  sha: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  range: string | null;
}

export interface DropRule {
  /** Repo path of the file whose response is cut. */
  path: string;
  /** Body bytes sent before the connection is destroyed. */
  afterBytes: number;
  /** How many responses to cut (default 1). */
  times?: number;
}

export interface HubServerOptions {
  /** Tree API page size (entries); no pagination when absent. */
  pageSize?: number;
  /** Answer Range requests with the whole file (200). */
  ignoreRange?: boolean;
  /** Leave Content-Range out of 206 answers (a CDN that does not expose it to scripts). */
  omitContentRange?: boolean;
  /** Slow the bodies down: `bytes` per piece, `delayMs` between pieces. */
  throttle?: { bytes: number; delayMs: number };
}

export interface HubServer {
  url: string;
  requests: RecordedRequest[];
  drops: DropRule[];
  options: HubServerOptions;
  close(): Promise<void>;
}

/** Reads a folder into repo paths (optionally under a prefix), skipping dot files. */
export function folderAsRepoFiles(dir: string, prefix = ''): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.set(prefix + relative(dir, full).split('\\').join('/'), readFileSync(full));
    }
  };
  walk(dir);
  return out;
}

export function repoOf(files: Map<string, Uint8Array>, seed = 'tiny'): HubRepo {
  return { files, sha: createHash('sha1').update(seed).digest('hex') };
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'range, accept, content-type',
  'access-control-expose-headers': 'content-range, content-length, accept-ranges, etag, link',
  'cross-origin-resource-policy': 'cross-origin',
};

function gitOid(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export async function startHubServer(
  repos: Record<string, HubRepo>,
  options: HubServerOptions = {},
): Promise<HubServer> {
  const requests: RecordedRequest[] = [];
  const drops: DropRule[] = [];
  const state = { options };

  const send = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { ...CORS, 'content-type': 'application/json', ...headers });
    res.end(text);
  };

  const repoAt = (owner: string, name: string, rev: string): HubRepo | undefined => {
    const repo = repos[`${owner}/${name}`];
    if (!repo) return undefined;
    return rev === 'main' || rev === repo.sha ? repo : undefined;
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const range = req.headers.range ?? null;
    requests.push({ method: req.method ?? 'GET', path: url.pathname, range });
    if (req.method === 'OPTIONS') {
      res.writeHead(204, CORS);
      res.end();
      return;
    }
    // api/models/<owner>/<name>/revision/<rev>
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'revision') {
      const repo = repoAt(parts[2]!, parts[3]!, parts[5] ?? '');
      if (!repo) return send(res, 404, { error: 'Revision Not Found' });
      return send(res, 200, { id: `${parts[2]}/${parts[3]}`, sha: repo.sha });
    }
    // api/models/<owner>/<name>/tree/<rev>/<path...>
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'tree') {
      const repo = repoAt(parts[2]!, parts[3]!, parts[5] ?? '');
      if (!repo) return send(res, 404, { error: 'Repository Not Found' });
      const folder = parts.slice(6).join('/');
      const prefix = folder ? `${folder}/` : '';
      const recursive = ['true', '1', 'True'].includes(url.searchParams.get('recursive') ?? '');
      const entries: unknown[] = [];
      const dirs = new Set<string>();
      for (const [path, bytes] of repo.files) {
        if (!path.startsWith(prefix)) continue;
        const rest = path.slice(prefix.length);
        if (!recursive && rest.includes('/')) {
          dirs.add(prefix + rest.slice(0, rest.indexOf('/')));
          continue;
        }
        for (let i = rest.indexOf('/'); i >= 0; i = rest.indexOf('/', i + 1))
          dirs.add(prefix + rest.slice(0, i));
        const big = bytes.length > 1024 * 1024;
        entries.push({
          type: 'file',
          oid: gitOid(bytes),
          size: big ? 134 : bytes.length,
          path,
          ...(big
            ? {
                lfs: {
                  oid: createHash('sha256').update(bytes).digest('hex'),
                  size: bytes.length,
                  pointerSize: 134,
                },
              }
            : {}),
        });
      }
      if (entries.length === 0 && folder) return send(res, 404, { error: 'Entry not found' });
      for (const d of dirs)
        entries.push({ type: 'directory', oid: '0'.repeat(40), size: 0, path: d });
      const size = state.options.pageSize;
      if (!size) return send(res, 200, entries);
      const cursor = Number(url.searchParams.get('cursor') ?? '0');
      const page = entries.slice(cursor, cursor + size);
      const headers: Record<string, string> = {};
      if (cursor + size < entries.length) {
        const next = new URL(url.href);
        next.searchParams.set('cursor', String(cursor + size));
        headers.link = `<${next.pathname}${next.search}>; rel="next"`;
      }
      return send(res, 200, page, headers);
    }
    // <owner>/<name>/resolve/<rev>/<path...>
    if (parts[2] === 'resolve') {
      const repo = repoAt(parts[0]!, parts[1]!, parts[3] ?? '');
      const path = parts.slice(4).join('/');
      const bytes = repo?.files.get(path);
      if (!bytes) return send(res, 404, { error: 'Entry not found' });
      let start = 0;
      let status = 200;
      const headers: Record<string, string> = {
        ...CORS,
        'accept-ranges': 'bytes',
        etag: `"${gitOid(bytes)}"`,
      };
      const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
      if (m && !state.options.ignoreRange) {
        start = Number(m[1]);
        if (start >= bytes.length) {
          res.writeHead(416, { ...headers, 'content-range': `bytes */${bytes.length}` });
          res.end();
          return;
        }
        status = 206;
        if (!state.options.omitContentRange)
          headers['content-range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
      }
      const body = bytes.subarray(start);
      headers['content-length'] = String(body.length);
      headers['content-type'] = 'application/octet-stream';
      res.writeHead(status, headers);
      const rule = drops.find((d) => d.path === path && (d.times ?? 1) > 0);
      if (rule) rule.times = (rule.times ?? 1) - 1;
      const cutAt = rule ? Math.max(0, rule.afterBytes - start) : Infinity;
      const piece = state.options.throttle?.bytes ?? 256 * 1024;
      const delay = state.options.throttle?.delayMs ?? 0;
      let off = 0;
      const pump = () => {
        if (res.destroyed) return;
        if (off >= cutAt) {
          // A dropped connection: the headers promised more than arrives. destroySoon lets the
          // bytes already written reach the client first.
          const sock = res.socket as (typeof res.socket & { destroySoon?: () => void }) | null;
          if (sock?.destroySoon) sock.destroySoon();
          else sock?.destroy();
          return;
        }
        if (off >= body.length) {
          res.end();
          return;
        }
        const end = Math.min(body.length, off + piece, cutAt);
        const ok = res.write(body.subarray(off, end));
        off = end;
        const next = () => (delay > 0 ? setTimeout(pump, delay) : setImmediate(pump));
        if (ok) next();
        else res.once('drain', next);
      };
      pump();
      return;
    }
    send(res, 404, { error: 'Not found' });
  };

  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    drops,
    get options() {
      return state.options;
    },
    set options(o: HubServerOptions) {
      state.options = o;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
