import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, type Credentials } from '../auth.js';
import { bearer, type Tokens } from '../tokens.js';

/*
 * Logging in and what a client asks first, as Canopsis v4 answers
 * (release-22.10: lib/api/auth/api.go Login/Logout and models.go;
 * lib/api/appinfo; tests/functional/features/api/core/authenticate.feature;
 * develop: lib/api/healthcheck/models.go LiveResponse).
 */

export interface SessionDeps {
  credentials: Credentials;
  tokens: Tokens;
  version: string;
  /** The failed-login limit: `blocked` answers 429 to an address past it (no password checked), `failed` counts one. */
  limiter: {
    blocked: (req: FastifyRequest, reply: FastifyReply) => Promise<boolean>;
    failed: (req: FastifyRequest, reply: FastifyReply) => Promise<boolean>;
  };
}

export function sessionRoutes(app: FastifyInstance, d: SessionDeps): void {
  app.post('/api/v4/login', async (req, reply) => {
    const body = (req.body ?? {}) as { username?: unknown; password?: unknown };
    const errors: Record<string, string> = {};
    if (typeof body.password !== 'string' || body.password === '') errors.password = 'Password is missing.';
    if (typeof body.username !== 'string' || body.username === '') errors.username = 'Username is missing.';
    if (Object.keys(errors).length) return reply.status(400).send({ errors });
    if (await d.limiter.blocked(req, reply)) return reply;
    const basic = `Basic ${Buffer.from(`${body.username}:${body.password}`).toString('base64')}`;
    const p = await authenticate(d.credentials, undefined, basic);
    if (!p) {
      if (await d.limiter.failed(req, reply)) return reply;
      return reply.status(401).send({ error: 'Unauthorized' });
    }
    return { access_token: await d.tokens.issue(p) };
  });

  app.post('/api/v4/logout', async (req, reply) => {
    const token = bearer(req.headers.authorization);
    const t = token ? await d.tokens.verify(token) : undefined;
    if (!t) return reply.status(401).send({ error: 'Unauthorized' });
    await d.tokens.revoke(t.jti, t.exp);
    return reply.status(204).send();
  });

  app.get('/api/v4/app-info', async () => ({
    version: d.version,
    edition: 'community',
    stack: 'canopsis-appliance',
    login: { casconfig: { enable: false }, ldapconfig: { enable: false }, saml2config: { enable: false } },
    allow_change_severity_to_info: false,
    max_matched_items: 10000,
    check_count_request_timeout: 30,
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    file_upload_max_size: 0,
  }));

  app.get('/api/v4/healthcheck/live', async () => ({ ok: true }));

  // Who is calling (lib/api/account: GET /account/me), with the role the console greys its buttons by.
  app.get('/api/v4/account/me', async (req) => {
    const p = req.principal!;
    return { _id: p.name, name: p.name, role: { _id: p.role, name: p.role }, ui_language: 'en' };
  });
}
