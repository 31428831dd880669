/**
 * Hash routing: GitHub Pages has no rewrites, so every route lives after '#'.
 * Route patterns follow MLflow's UI where it has one (#/experiments/1/runs/<id>).
 */
export type Route =
  | { page: 'experiments' }
  | { page: 'experiment'; experimentId: string }
  | { page: 'run'; experimentId: string; runId: string }
  | { page: 'compare'; runIds: string[] }
  | { page: 'models' }
  | { page: 'model'; name: string }
  | { page: 'model-version'; name: string; version: string }
  | { page: 'playground'; model?: string; version?: string; runId?: string }
  | { page: 'settings' }
  | { page: 'not-found'; path: string };

function parts(path: string): string[] {
  return path
    .split('/')
    .filter((p) => p.length > 0)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
}

export function parseHash(hash: string): { route: Route; query: URLSearchParams } {
  const raw = hash.replace(/^#/, '') || '/';
  const [path = '/', search = ''] = raw.split('?', 2);
  const query = new URLSearchParams(search);
  const p = parts(path);
  const route = ((): Route => {
    if (p.length === 0) return { page: 'experiments' };
    const [a, b, c, d, e, f] = p;
    if (a === 'experiments') {
      if (b === undefined) return { page: 'experiments' };
      if (c === undefined) return { page: 'experiment', experimentId: b };
      if (c === 'runs' && d !== undefined && e === undefined)
        return { page: 'run', experimentId: b, runId: d };
    }
    if (a === 'compare-runs' && b === undefined) {
      const runs = (query.get('runs') ?? '').split(',').filter(Boolean);
      return { page: 'compare', runIds: runs };
    }
    if (a === 'models') {
      if (b === undefined) return { page: 'models' };
      if (c === undefined) return { page: 'model', name: b };
      if (c === 'versions' && d !== undefined && e === undefined)
        return { page: 'model-version', name: b, version: d };
    }
    if (a === 'playground' && b === undefined) {
      const r: Route = { page: 'playground' };
      const model = query.get('model');
      const version = query.get('version');
      const runId = query.get('run');
      if (model) r.model = model;
      if (version) r.version = version;
      if (runId) r.runId = runId;
      return r;
    }
    if (a === 'settings' && b === undefined) return { page: 'settings' };
    void f;
    return { page: 'not-found', path };
  })();
  return { route, query };
}

const enc = encodeURIComponent;

/** Builds the href of a route, so links are never written by hand. */
export function href(route: Route): string {
  switch (route.page) {
    case 'experiments':
      return '#/experiments';
    case 'experiment':
      return `#/experiments/${enc(route.experimentId)}`;
    case 'run':
      return `#/experiments/${enc(route.experimentId)}/runs/${enc(route.runId)}`;
    case 'compare':
      return `#/compare-runs?runs=${route.runIds.map(enc).join(',')}`;
    case 'models':
      return '#/models';
    case 'model':
      return `#/models/${enc(route.name)}`;
    case 'model-version':
      return `#/models/${enc(route.name)}/versions/${enc(route.version)}`;
    case 'playground': {
      const q = new URLSearchParams();
      if (route.model) q.set('model', route.model);
      if (route.version) q.set('version', route.version);
      if (route.runId) q.set('run', route.runId);
      const s = q.toString();
      return s ? `#/playground?${s}` : '#/playground';
    }
    case 'settings':
      return '#/settings';
    case 'not-found':
      return `#${route.path}`;
  }
}

class Router {
  route = $state<Route>({ page: 'experiments' });
  query = $state(new URLSearchParams());

  constructor() {
    if (typeof window === 'undefined') return;
    this.#read();
    window.addEventListener('hashchange', () => this.#read());
  }

  #read(): void {
    const { route, query } = parseHash(location.hash);
    this.route = route;
    this.query = query;
  }

  /**
   * Goes to a route. `query` adds parameters the route itself does not define (page state such
   * as a runs filter), so that deep links and the back button restore it.
   */
  navigate(to: Route, opts: { replace?: boolean; query?: URLSearchParams } = {}): void {
    const extra = opts.query?.toString() ?? '';
    const base = href(to);
    const h = extra ? `${base}${base.includes('?') ? '&' : '?'}${extra}` : base;
    if (opts.replace) history.replaceState(history.state, '', h);
    else location.hash = h;
    this.#read();
  }
}

export const router = new Router();

/** Which top-level nav section a route belongs to. */
export function section(route: Route): 'experiments' | 'models' | 'playground' | 'settings' | null {
  switch (route.page) {
    case 'experiments':
    case 'experiment':
    case 'run':
    case 'compare':
      return 'experiments';
    case 'models':
    case 'model':
    case 'model-version':
      return 'models';
    case 'playground':
      return 'playground';
    case 'settings':
      return 'settings';
    default:
      return null;
  }
}
