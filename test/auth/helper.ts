import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { createAuth, type Auth, type AuthConfig } from '../../src/auth/tokens.js';
import { JWT_BEARER } from '../../src/auth/token-endpoint.js';
import type { Database } from '../../src/db/client.js';
import { authRoutes } from '../../src/routes/auth.js';
import { testDatabase, type Teardown } from '../helper.js';

export const BASE = 'http://fascia.test';
export const TOKEN_URL = `${BASE}/auth/token`;

/** The auth routes alone on a fresh database (the lead wires them into buildApp). */
export async function authApp(t: Teardown, config: Partial<AuthConfig> = {}, database?: Database): Promise<{ app: FastifyInstance; auth: Auth; database: Database }> {
  const db = database ?? (await testDatabase(t));
  const auth = createAuth(db.db, { baseUrl: BASE, authTokenTtl: 300, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false, ...config });
  const app = Fastify();
  await app.register(authRoutes, { auth });
  await app.ready();
  t.teardown(() => app.close());
  return { app, auth, database: db };
}

export interface KeyPair {
  alg: 'RS384' | 'ES384';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function keyPair(alg: 'RS384' | 'ES384'): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A signed JWT; `claims` override the defaults (null removes one). */
export async function signed(key: KeyPair, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== null)) as JWTPayload;
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

/** A client assertion for the token endpoint (private_key_jwt). */
export function assertion(clientId: string, key: KeyPair, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return signed(key, { iss: clientId, sub: clientId, aud: TOKEN_URL, exp: now + 240, iat: now, jti: randomUUID(), ...claims });
}

/** An unsecured JWT (`alg: none`), which must never be accepted. */
export function unsecured(claims: Record<string, unknown>): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

export function tokenForm(clientAssertion: string, scope: string, extra: Record<string, string> = {}): string {
  return new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: clientAssertion, scope, ...extra }).toString();
}

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** A tiny HTTP server on 127.0.0.1 answering JSON documents by path; closed at teardown. */
export async function jsonServer(t: Teardown, documents: (base: string) => Record<string, unknown>): Promise<{ base: string; server: Server; hits: Map<string, number> }> {
  const hits = new Map<string, number>();
  let docs: Record<string, unknown> = {};
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const doc = docs[path];
    if (doc === undefined) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  docs = documents(base);
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { base, server, hits };
}
