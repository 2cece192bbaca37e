import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, AUTH, startTestApp, type TestApp } from '../support/app.js';

describe('OpenAPI and Swagger UI', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('needs a key, and tells a browser to ask for one', async () => {
    const res = await request(t.server).get('/api/openapi.json').expect(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic /);
    await request(t.server).get('/api/docs').expect(401);
    await request(t.server).get('/api/openapi.json').set('Authorization', 'Bearer ul_not-a-key').expect(401);
  });

  it('needs a key however the path is spelt: the router decodes it, and so does the guard', async () => {
    for (const path of [
      '/api/%64ocs',
      '/api/openapi%2Ejson',
      '/api/openapi%2eyaml',
      '/api/docs/swagger-ui%2Ecss',
      '/%61pi/docs/',
    ]) {
      const res = await request(t.server).get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
    }
    // And with a key they are the docs, as their plain spellings are.
    await request(t.server).get('/api/openapi%2Ejson').set(AUTH).expect(200);
  });

  it('describes every rollout route with the request schemas that validate them', async () => {
    const { body } = await request(t.server).get('/api/openapi.json').set(AUTH).expect(200);
    expect(body.openapi).toMatch(/^3\./);
    const paths = Object.keys(body.paths);
    for (const p of [
      '/api/v1/rollouts',
      '/api/v1/rollouts/{id}',
      '/api/v1/rollouts/{id}/plan',
      '/api/v1/rollouts/{id}/readbacks',
      '/api/v1/rollouts/{id}/steps/{stepId}/complete',
      '/api/v1/rollouts/{id}/rollbacks',
      '/api/v1/ledger',
      '/api/v1/ledger/verify',
      '/api/v1/api-keys',
    ]) {
      expect(paths, p).toContain(p);
    }
    const create = body.paths['/api/v1/rollouts'].post;
    const schema = JSON.stringify(create.requestBody ?? {});
    // The plan's schema, from the same zod object that validates it.
    expect(schema).toContain('rollbackBoundary');
    expect(schema).toContain('irreversibleAfterStepId');
  });

  it('serves the browsable UI with HTTP Basic, the key as password', async () => {
    const basic = `Basic ${Buffer.from(`auditor:${ADMIN_TOKEN}`).toString('base64')}`;
    const res = await request(t.server).get('/api/docs').set('Authorization', basic).redirects(2);
    expect(res.status).toBe(200);
    expect(res.text).toContain('swagger');
  });
});
