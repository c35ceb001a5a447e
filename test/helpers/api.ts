import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { readIni } from '../../runtime/config/files.js';
import { apiClient } from '../../runtime/web/client.js';

/*
 * Calling an installed prefix's REST API from a test as our own tools do:
 * the URL and the certificate from its etc/webserver.conf, verification on,
 * and the prefix's API key unless the caller sends credentials of its own.
 */

/** [api] authkey of PREFIX/etc/canopsis-secrets.ini. */
export async function authkeyOf(prefix: string): Promise<string> {
  const file = path.join(prefix, 'etc', 'canopsis-secrets.ini');
  const key = (await readIni(file)).api?.authkey;
  if (!key) throw new Error(`${file}: no [api] authkey`);
  return key;
}

/**
 * fetch against PREFIX's API: "/alarms?opened=true" is under /api/v4, an
 * absolute URL (origin + "/metrics") is used as it is. The answer is read in
 * full before the connection closes, so its body can be read at leisure.
 */
export async function apiFetch(prefix: string, pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
  const api = await apiClient(prefix);
  try {
    const headers = new Headers(init.headers);
    if (!headers.has('x-canopsis-authkey') && !headers.has('authorization')) headers.set('x-canopsis-authkey', await authkeyOf(prefix));
    const r = await api.fetch(pathOrUrl, { ...init, headers });
    const body = await r.arrayBuffer();
    const empty = r.status === 204 || r.status === 304 || (init.method ?? 'GET').toUpperCase() === 'HEAD';
    return new Response(empty ? null : body, { status: r.status, statusText: r.statusText, headers: [...r.headers] });
  } finally {
    await api.close();
  }
}

/** The origin (https://host:port) of PREFIX's API, for routes outside /api/v4 such as /metrics. */
export async function apiOrigin(prefix: string): Promise<string> {
  const api = await apiClient(prefix);
  await api.close();
  return api.origin;
}

/**
 * A self-signed certificate and key made with `openssl req -x509` as the
 * installer makes them: names localhost, 127.0.0.1 and ::1 unless given.
 */
export async function selfSignedCert(
  dir: string,
  names = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'],
  cn = 'localhost',
): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const cert = path.join(dir, 'webserver.crt');
  const key = path.join(dir, 'webserver.key');
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    `subjectAltName=${names.join(',')}`,
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  return { cert, key };
}
