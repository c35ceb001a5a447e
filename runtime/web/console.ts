import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/*
 * The alarm console (console/, a Vue single-page app built at bundle time)
 * served under `/` beside the API: its files as they are, and index.html for
 * any other path that is not the API's, so that a reload on /alarms or
 * /platform opens the page. Hashed assets are cached for good; index.html
 * never is, so an update shows at the next load.
 */

export const isApi = (url: string) => url.startsWith('/api/') || url === '/api' || url.startsWith('/metrics');

/** The built console beside this file in a release (dist/runtime/web -> dist/console). */
export const bundledConsole = () => {
  const dir = path.resolve(import.meta.dirname, '../../console');
  return existsSync(path.join(dir, 'index.html')) ? dir : undefined;
};

const CSP = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export async function consoleRoutes(app: FastifyInstance, dir: string): Promise<void> {
  await app.register(fastifyStatic, {
    root: dir,
    prefix: '/',
    wildcard: false,
    index: false,
    cacheControl: false,
    setHeaders: (res, file) => {
      res.header('content-security-policy', CSP);
      res.header('x-content-type-options', 'nosniff');
      res.header('cache-control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  // Every file of the build has its route (wildcard: false reads the directory once, at start); `/` is the app.
  app.get('/', (_req, reply) => consolePage(reply));
}

/** A page of the app that is not a file (a reload on /alarms): index.html. */
export const isConsolePage = (method: string, url: string) => method === 'GET' && !isApi(url) && !path.extname(url.split('?')[0] ?? '');

export function consolePage(reply: FastifyReply) {
  reply.header('content-security-policy', CSP);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('cache-control', 'no-cache');
  return reply.sendFile('index.html');
}
