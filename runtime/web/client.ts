import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkServerIdentity, rootCertificates } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { apiOrigin, readWebserverConf } from '../config/files.js';

/*
 * How our own programs call the REST API of an installed prefix: the URL
 * from etc/webserver.conf and, over HTTPS, the configured certificate
 * trusted as one more CA beside the bundled ones, so a self-signed
 * certificate is verified (name and signature) instead of verification
 * being turned off.
 *
 * undici (the library behind Node's own fetch) rather than node:https: its
 * fetch takes a dispatcher carrying the CA and gives back a standard
 * Response, AbortSignal timeouts included, where node:https would need a
 * hand-written fetch around it. 6.x because 7.x needs Node >= 20.18.1.
 */

export interface ApiClient {
  /** e.g. https://127.0.0.1:8082/api/v4 */
  base: string;
  /** e.g. https://127.0.0.1:8082, for routes outside /api/v4 such as /metrics */
  origin: string;
  /** A path is appended to base ("/alarms?opened=true"); an absolute URL is used as it is. */
  fetch: (pathOrUrl: string | URL, init?: RequestInit) => Promise<Response>;
  /** Closes the kept-alive connections. */
  close: () => Promise<void>;
}

/**
 * Trusts the configured certificate (PEM) as a root on top of the bundled
 * CAs (ca replaces the defaults, so both are given). The chain is always
 * verified. The name is too, except that the very certificate of the
 * configuration is accepted under any name: an operator's certificate for
 * api.example.com is still ours when a local tool reaches it on 127.0.0.1.
 */
export function trustAgent(certPem: string): Agent {
  const pinned = new X509Certificate(certPem).fingerprint256;
  return new Agent({
    connect: {
      ca: [...rootCertificates, certPem],
      checkServerIdentity: (host, cert) => {
        const err = checkServerIdentity(host, cert);
        return err && cert.fingerprint256 !== pinned ? err : undefined;
      },
    },
  });
}

export async function apiClient(prefix: string): Promise<ApiClient> {
  const conf = await readWebserverConf(prefix);
  const origin = apiOrigin(conf);
  const base = `${origin}/api/v4`;
  let agent: Agent | undefined;
  if (conf.tls) {
    let pem: string;
    try {
      pem = await readFile(conf.tls.cert, 'utf8');
    } catch (e) {
      throw new Error(
        `cannot read the API's certificate ${conf.tls.cert} ([server] tls_cert of ${conf.file}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    try {
      agent = trustAgent(pem);
    } catch (e) {
      throw new Error(
        `the API's certificate ${conf.tls.cert} ([server] tls_cert of ${conf.file}) is not a PEM certificate: ${(e as Error).message}`,
      );
    }
  }
  const url = (p: string | URL) =>
    typeof p !== 'string' || /^https?:\/\//.test(p) ? String(p) : `${base}${p.startsWith('/') ? '' : '/'}${p}`;
  return {
    base,
    origin,
    // undici's Response has the shape of Node's global one, under its own type declarations.
    fetch: (p, init) =>
      undiciFetch(url(p), { ...(init as object), ...(agent ? { dispatcher: agent } : {}) }) as unknown as Promise<Response>,
    close: async () => {
      await agent?.close();
    },
  };
}
