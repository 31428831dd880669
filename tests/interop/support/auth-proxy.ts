// A bearer-token gate in front of a test `mlflow server`, as teams put an auth proxy in front of
// theirs: on 127.0.0.1, every request without `Authorization: Bearer <token>` is answered 401
// with an MLflow-style JSON error; the rest is forwarded unchanged (bodies streamed both ways).
// CORS preflights carry no credentials in any browser, so, like a real proxy, it forwards them
// to the server untouched and lets the server's own CORS settings answer. Its own 401 carries the
// CORS headers for an allowed origin, so the page can read the error rather than see a network
// failure (nginx `add_header ... always`, oauth2-proxy and the like do the same).
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { freePort } from './mlflow-server.ts';

export interface AuthProxy {
  url: string;
  port: number;
  /** Every request that reached the proxy, in order (for checks on what the page sent). */
  requests: Array<{ method: string; url: string; authorized: boolean; preflight: boolean }>;
  stop(): Promise<void>;
}

export interface AuthProxyOptions {
  /** The server behind the proxy, e.g. http://127.0.0.1:5000. */
  upstream: string;
  token: string;
  /** Browser origins that may read the proxy's own 401 answers. */
  allowedOrigins?: string[];
  port?: number;
}

export const UNAUTHENTICATED_MESSAGE =
  'Authentication required: send an Authorization: Bearer <token> header with a valid token.';

export async function startAuthProxy(options: AuthProxyOptions): Promise<AuthProxy> {
  const upstream = new URL(options.upstream);
  const expected = `Bearer ${options.token}`;
  const allowed = new Set(options.allowedOrigins ?? []);
  const requests: AuthProxy['requests'] = [];

  const refuse = (req: IncomingMessage, res: ServerResponse, message: string): void => {
    const origin = req.headers.origin;
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'WWW-Authenticate': 'Bearer realm="mlflow"',
    };
    if (origin && allowed.has(origin)) {
      headers['Access-Control-Allow-Origin'] = origin;
      headers['Vary'] = 'Origin';
    }
    res.writeHead(401, headers);
    res.end(JSON.stringify({ error_code: 'UNAUTHENTICATED', message }));
  };

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const headers = { ...req.headers, host: upstream.host };
    const out = request(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error_code: 'BAD_GATEWAY', message: e.message }));
    });
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    const preflight =
      req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    const auth = req.headers.authorization;
    const authorized = auth === expected;
    requests.push({ method: req.method ?? '', url: req.url ?? '', authorized, preflight });
    if (preflight || authorized) return forward(req, res);
    // Drain the body before answering so the client sees the 401, not a reset.
    req.resume();
    req.on('end', () =>
      refuse(
        req,
        res,
        auth === undefined
          ? UNAUTHENTICATED_MESSAGE
          : 'Invalid bearer token: the token sent is not valid for this server.',
      ),
    );
  });

  const port = options.port ?? (await freePort());
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ok());
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    stop: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
