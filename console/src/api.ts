/*
 * The console's only way to the appliance: the REST API under /api/v4, with
 * the token of POST /api/v4/login as Authorization: Bearer. The token is kept
 * for the tab (sessionStorage); when it expires, or the API answers 401, the
 * session ends and the login page comes back, saying why.
 */
import { reactive } from 'vue';

export interface Me {
  name: string;
  role: 'admin' | 'readonly';
}

const KEY = 'canopsis.token';

export const session = reactive({
  token: sessionStorage.getItem(KEY) ?? '',
  me: undefined as Me | undefined,
  /** Why the last session ended ("expired", ...), shown on the login page. */
  ended: '',
});

let expiry: number | undefined;

/** Seconds since the epoch the token expires at (its exp claim). */
function expiresAt(token: string): number | undefined {
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: number };
    return payload.exp;
  } catch {
    return undefined;
  }
}

export function endSession(why: string): void {
  if (expiry !== undefined) clearTimeout(expiry);
  expiry = undefined;
  session.token = '';
  session.me = undefined;
  session.ended = why;
  sessionStorage.removeItem(KEY);
}

function watchExpiry(): void {
  if (expiry !== undefined) clearTimeout(expiry);
  const exp = expiresAt(session.token);
  if (exp === undefined) return;
  const ms = exp * 1000 - Date.now();
  if (ms <= 0) endSession('Your session expired: log in again.');
  else expiry = window.setTimeout(() => endSession('Your session expired: log in again.'), Math.min(ms, 2 ** 31 - 1));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    const b = body as { error?: string; errors?: Record<string, string> } | undefined;
    super(
      b?.error ??
        (b?.errors
          ? Object.entries(b.errors)
              .map(([k, v]) => `${k}: ${v}`)
              .join('; ')
          : `HTTP ${status}`),
    );
  }
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(`/api/v4${path}`, {
    method,
    headers: {
      ...(session.token ? { authorization: `Bearer ${session.token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    // Not JSON (a proxy's error page): the status says what happened.
    parsed = { error: `HTTP ${r.status}${r.statusText ? ` ${r.statusText}` : ''}` };
  }
  if (r.status === 401 && session.token) endSession('The API no longer accepts your session: log in again.');
  if (!r.ok) throw new ApiError(r.status, parsed);
  return parsed as T;
}

export async function login(username: string, password: string): Promise<void> {
  const r = await api<{ access_token: string }>('POST', '/login', { username, password });
  session.token = r.access_token;
  session.ended = '';
  sessionStorage.setItem(KEY, r.access_token);
  await loadMe();
}

export async function loadMe(): Promise<void> {
  if (!session.token) return;
  watchExpiry();
  if (!session.token) return;
  session.me = await api<Me & { role: { _id: string } }>('GET', '/account/me').then((m) => ({
    name: m.name,
    role: (m.role as unknown as { _id: string })._id === 'admin' ? 'admin' : 'readonly',
  }));
}

export async function logout(): Promise<void> {
  await api('POST', '/logout').catch(() => undefined);
  endSession('');
}

/** Why the current user cannot act, or '' when they can: the buttons say it. */
export const cannotAct = () => (session.me?.role === 'admin' ? '' : `${session.me?.name ?? 'You'} is read-only: actions are disabled`);
