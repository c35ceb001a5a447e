import { hkdfSync, randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Collection } from '../store/types.js';
import type { Principal, Role } from './auth.js';

/*
 * The access tokens of POST /api/v4/login (Canopsis v4: lib/api/auth/api.go
 * Login answers {access_token}; clients then send Authorization: Bearer).
 * HS256 JWTs whose key is derived from the API key of
 * etc/canopsis-secrets.ini: every webserver process of a host (and of
 * several hosts) shares it without a new secret to distribute, and a new
 * API key ends every session. A logout revokes the token's id in the store
 * until the token would have expired anyway.
 */

export const REVOKED_TOKENS = 'revoked_tokens';
export const TOKEN_TTL = 24 * 3600;
const ISSUER = 'canopsis-appliance';

export interface Revoked {
  /** When the token expires: the entry can go then. */
  exp: number;
}

export class Tokens {
  private readonly key: Uint8Array;

  constructor(
    authkey: string,
    private readonly revoked: Collection<Revoked>,
    private readonly ttl = TOKEN_TTL,
  ) {
    this.key = new Uint8Array(hkdfSync('sha256', authkey, 'canopsis api tokens', 'jwt hs256', 32));
  }

  async issue(p: Principal, now = Math.floor(Date.now() / 1000)): Promise<string> {
    return new SignJWT({ role: p.role })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(p.name)
      .setIssuer(ISSUER)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + this.ttl)
      .sign(this.key);
  }

  /** The token's user and id, or undefined for a token that is forged, expired or revoked. */
  async verify(token: string): Promise<{ name: string; role: Role; jti: string; exp: number } | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return undefined;
      if (await this.revoked.get(payload.jti)) return undefined;
      return { name: payload.sub, role: payload.role === 'admin' ? 'admin' : 'readonly', jti: payload.jti, exp: payload.exp };
    } catch (e) {
      if (e instanceof joseErrors.JOSEError) return undefined;
      throw e;
    }
  }

  async revoke(jti: string, exp: number, now = Math.floor(Date.now() / 1000)): Promise<void> {
    await this.revoked.ensureIndex(['exp']);
    await this.revoked.put(jti, { exp });
    // Entries of tokens past their expiry prove nothing any more; a few go with each logout.
    await this.revoked.delete({ exp: { $lt: now } }, { sort: [['exp', 1]], limit: 100 });
  }
}

/** `Authorization: Bearer <token>`: the token, or undefined. */
export const bearer = (authorization: string | undefined) => /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '')?.[1];
