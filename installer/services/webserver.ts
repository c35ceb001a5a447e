import { conf, UNIT_DIR } from '../render/file-spec.js';
import { hasRole } from '../settings/roles.js';
import type { ServiceModule } from './types.js';

/* The REST API (HTTPS by default, with a generated certificate unless the operator brings one). */

export const webserver: ServiceModule = {
  name: 'webserver',
  tier: 'FRONTEND',
  enabled: (s) => hasRole(s, 'webserver'),
  files: () => [
    conf('etc/supervisord.d/webserver.conf', 'templates/supervisord.d/webserver.conf.hbs'),
    conf('etc/webserver.conf', 'templates/webserver.conf.hbs'),
    conf(`${UNIT_DIR}/canopsis-webserver.service`, 'systemd/canopsis-webserver.service.hbs'),
  ],
  directories: () => [],
  needs: (s) =>
    s.webserver.tls && !s.webserver.tls_cert
      ? [
          {
            key: 'openssl',
            binary: 'openssl',
            neededBy: 'webserver.tls=true without webserver.tls_cert (a self-signed certificate is made)',
            packages: ['openssl'],
          },
        ]
      : [],
  ports: (s) => [{ service: 'webserver', host: s.webserver.bind, port: s.webserver.port, setting: ['webserver', 'port'] }],
  units: () => ['canopsis-webserver.service'],
  // Its healthcheck answers 200, over HTTPS trusting the configured certificate.
  ready: async (prefix) => {
    // Loaded when asked: an HTTP client is no part of rendering.
    const { apiClient } = await import('../../runtime/web/client.js');
    let api: Awaited<ReturnType<typeof apiClient>>;
    try {
      api = await apiClient(prefix);
    } catch (e) {
      return (e as Error).message;
    }
    try {
      const r = await api.fetch('/healthcheck', { signal: AbortSignal.timeout(5000) });
      return r.status === 200 ? undefined : `healthcheck answered ${r.status}: ${await r.text()}`;
    } catch (e) {
      // The reason (refused, certificate not trusted) is in fetch's cause.
      const cause = (e as { cause?: Error }).cause;
      return `healthcheck at ${api.base}/healthcheck unreachable: ${(e as Error).message}${cause ? `: ${cause.message}` : ''}`;
    } finally {
      await api.close();
    }
  },
  restarts: () => true,
};
