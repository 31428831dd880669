// The MLflow REST client's own rules, without a server: log-batch splitting within MLflow's
// limits, MLflow's JSON (NaN/Infinity as strings), error bodies turned into code + message, the
// artifact proxy's paths, and the saved-server list.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  LOG_BATCH_LIMITS,
  MlflowRestClient,
  MlflowRestError,
  artifactProxyPath,
  runFromJson,
  splitLogBatch,
} from '../../src/lib/remote/mlflow-rest.ts';
import {
  listRemoteServers,
  remoteKey,
  remoteRunTag,
  removeRemoteServer,
  saveRemoteServer,
} from '../../src/lib/services/sync.ts';

const metric = (n: number) => ({ key: `m${n % 7}`, value: n, timestamp: n, step: n });

describe('splitLogBatch', () => {
  it('keeps every entity, in order, and no call over MLflow limits', () => {
    fc.assert(
      fc.property(
        fc.nat(3500),
        fc.nat(260),
        fc.nat(260),
        fc.integer({ min: 0, max: 8000 }),
        (nm, np, nt, valueLen) => {
          const metrics = Array.from({ length: nm }, (_, n) => metric(n));
          const params = Array.from({ length: np }, (_, n) => ({ key: `p${n}`, value: 'v' }));
          const tags = Array.from({ length: nt }, (_, n) => ({
            key: `t${n}`,
            value: 'x'.repeat(valueLen),
          }));
          const batches = splitLogBatch({ metrics, params, tags });
          for (const b of batches) {
            expect(b.metrics.length).toBeLessThanOrEqual(LOG_BATCH_LIMITS.metrics);
            expect(b.params.length).toBeLessThanOrEqual(LOG_BATCH_LIMITS.params);
            expect(b.tags.length).toBeLessThanOrEqual(LOG_BATCH_LIMITS.tags);
            expect(b.metrics.length + b.params.length + b.tags.length).toBeLessThanOrEqual(
              LOG_BATCH_LIMITS.total,
            );
            expect(JSON.stringify(b).length).toBeLessThan(1_000_000);
          }
          expect(batches.flatMap((b) => b.metrics)).toEqual(metrics);
          expect(batches.flatMap((b) => b.params)).toEqual(params);
          expect(batches.flatMap((b) => b.tags)).toEqual(tags);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('sends 2500 points in three calls', () => {
    const batches = splitLogBatch({ metrics: Array.from({ length: 2500 }, (_, n) => metric(n)) });
    expect(batches.map((b) => b.metrics.length)).toEqual([1000, 1000, 500]);
  });
});

/** A stand-in server answering with fixed bodies, recording what it was sent. */
function server(status: number, body: string, seen: Request[] = []): typeof fetch {
  return async (input, init) => {
    seen.push(new Request(input, init));
    return new Response(body, { status, headers: { 'Content-Type': 'application/json' } });
  };
}

describe('MlflowRestClient', () => {
  it("turns MLflow's error body into the error code and message", async () => {
    const c = new MlflowRestClient('http://127.0.0.1:5000', {
      fetch: server(
        404,
        '{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run \'abc\' not found"}',
      ),
    });
    const err = await c.getRun('abc').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlflowRestError);
    expect(err).toMatchObject({
      errorCode: 'RESOURCE_DOES_NOT_EXIST',
      serverMessage: "Run 'abc' not found",
      httpStatus: 404,
      message: "RESOURCE_DOES_NOT_EXIST: Run 'abc' not found",
    });
  });

  it('names a plain-text refusal (the security middleware) by its HTTP status', async () => {
    const c = new MlflowRestClient('http://127.0.0.1:5000', {
      fetch: server(403, 'Cross-origin request blocked'),
    });
    await expect(c.createExperiment('x')).rejects.toThrow('HTTP_403: Cross-origin request blocked');
  });

  it('says what to check when the server cannot be reached', async () => {
    const c = new MlflowRestClient('http://127.0.0.1:9', {
      fetch: async () => {
        throw new TypeError('Failed to fetch');
      },
    });
    await expect(c.searchExperiments()).rejects.toThrow(/NETWORK_ERROR: .*--cors-allowed-origins/);
  });

  it('sends JSON with the token, and NaN and infinities as MLflow spells them', async () => {
    const seen: Request[] = [];
    const c = new MlflowRestClient('http://127.0.0.1:5000/', {
      token: 's3cret',
      fetch: server(200, '{}', seen),
    });
    await c.logBatch('r1', {
      metrics: [
        { key: 'a', value: NaN, timestamp: 1, step: 0 },
        { key: 'a', value: -Infinity, timestamp: 2, step: 1 },
      ],
    });
    const req = seen[0]!;
    expect(req.url).toBe('http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch');
    expect(req.headers.get('content-type')).toBe('application/json');
    expect(req.headers.get('authorization')).toBe('Bearer s3cret');
    const body = (await req.json()) as { metrics: Array<{ value: unknown }> };
    expect(body.metrics.map((m) => m.value)).toEqual(['NaN', '-Infinity']);
  });

  it('reads runs with string doubles and int64 fields', () => {
    const run = runFromJson({
      info: { run_id: 'r', experiment_id: '1', status: 'FINISHED', start_time: 5, end_time: 9 },
      data: {
        metrics: [{ key: 'x', value: 'Infinity', timestamp: 1, step: 2 }],
        params: [{ key: 'p', value: '1' }],
        tags: [{ key: 't', value: 'v' }],
      },
    });
    expect(run.metrics.x).toEqual({ key: 'x', value: Infinity, timestamp: 1, step: 2 });
    expect(run.info).toMatchObject({ runId: 'r', experimentId: '1', endTime: 9 });
    expect(run.params).toEqual({ p: '1' });
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => new MlflowRestClient('file:///tmp')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => new MlflowRestClient('not a url')).toThrow(/Not a URL/);
  });
});

describe('paths and names', () => {
  it('maps artifact proxy URIs to proxy paths', () => {
    expect(artifactProxyPath('mlflow-artifacts:/1/abc/artifacts')).toBe('1/abc/artifacts');
    expect(artifactProxyPath('mlflow-artifacts://host:5000/1/abc/artifacts/')).toBe(
      '1/abc/artifacts',
    );
    expect(artifactProxyPath('file:///tmp/x')).toBeNull();
  });

  it('makes tag keys MLflow accepts from server URLs', () => {
    expect(remoteKey('http://127.0.0.1:5000')).toBe('127.0.0.1_5000');
    expect(remoteKey('https://mlflow.example.com/team/')).toBe('mlflow.example.com_443_team');
    expect(remoteRunTag('http://localhost:5000')).toMatch(/^[\w.\- /:]+$/);
  });

  it('keeps saved servers (token included) in local storage only, and removes them', () => {
    const s = saveRemoteServer({ url: ' http://127.0.0.1:5000/ ', token: 't' });
    expect(s).toMatchObject({ name: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', token: 't' });
    expect(listRemoteServers()).toContainEqual(s);
    expect(() => saveRemoteServer({ url: 'ftp://x' })).toThrow();
    removeRemoteServer(s.id);
    expect(listRemoteServers()).not.toContainEqual(s);
  });
});
