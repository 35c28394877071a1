import { randomBytes, randomUUID, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { asc, eq, sql } from 'drizzle-orm';
import type { JSONWebKeySet } from 'jose';
import type { Db } from '../db/client.js';
import { authClients } from '../db/schema.js';

const scrypt = promisify(scryptCallback) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;

export type ClientKind = 'client' | 'operator';

export interface Client {
  id: string;
  name: string;
  scope: string;
  kind: ClientKind;
  jwks: JSONWebKeySet | null;
  jwksUrl: string | null;
  secretHash: string | null;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface NewClient {
  name: string;
  scope: string;
  kind?: ClientKind;
  /** The client's public keys, by value… */
  jwks?: JSONWebKeySet;
  /** …or where to fetch them. */
  jwksUrl?: string;
  /** For client_secret_basic (AUTH_CLIENT_SECRETS=on); stored only as an scrypt hash. */
  secret?: string;
}

/** How long a client row is trusted in memory: revocation by another process takes effect within it. */
const CACHE_MS = 1_000;

/** scrypt$<salt>$<hash>, both base64url. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(secret, salt, 32);
  return `scrypt$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/**
 * What a wrong secret is checked against when there is no stored hash to check (an
 * unknown, revoked or secretless client): the same scrypt, so every failure costs what a
 * live client's costs and the time of an answer does not tell which client ids exist.
 */
const NO_SALT = Buffer.alloc(16, 0x5a);
const NO_HASH = Buffer.alloc(32);

/** Whether `secret` matches `stored` (null: never), after one scrypt whatever `stored` is. */
export async function secretMatches(secret: string, stored: string | null): Promise<boolean> {
  const [scheme, salt, hash] = (stored ?? '').split('$');
  const usable = scheme === 'scrypt' && !!salt && !!hash;
  const expected = usable ? Buffer.from(hash, 'base64url') : NO_HASH;
  const actual = await scrypt(secret, usable ? Buffer.from(salt, 'base64url') : NO_SALT, expected.length);
  return timingSafeEqual(actual, expected) && usable;
}

/** The clients registered to ask /auth/token for tokens. */
export class ClientStore {
  private readonly cache = new Map<string, { at: number; client: Client | undefined }>();

  constructor(private readonly db: Db) {}

  async add(client: NewClient): Promise<Client> {
    const [row] = await this.db
      .insert(authClients)
      .values({
        id: randomUUID(),
        name: client.name,
        scope: client.scope,
        kind: client.kind ?? 'client',
        jwks: client.jwks ?? null,
        jwksUrl: client.jwksUrl ?? null,
        secretHash: client.secret === undefined ? null : await hashSecret(client.secret),
      })
      .returning();
    return row as Client;
  }

  /** A client by id, revoked or not; undefined if unknown. Cached for at most a second. */
  async get(id: string): Promise<Client | undefined> {
    const hit = this.cache.get(id);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.client;
    const [row] = await this.db.select().from(authClients).where(eq(authClients.id, id)).limit(1);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(id, { at: Date.now(), client: row as Client | undefined });
    return row as Client | undefined;
  }

  async list(): Promise<Client[]> {
    return (await this.db.select().from(authClients).orderBy(asc(authClients.createdAt))) as Client[];
  }

  /** Revokes a client: its tokens stop verifying at once, and it gets no new ones. false when there is no such client. */
  async revoke(id: string): Promise<boolean> {
    const rows = await this.db
      .update(authClients)
      .set({ revokedAt: sql`coalesce(${authClients.revokedAt}, now())` })
      .where(eq(authClients.id, id))
      .returning({ id: authClients.id });
    this.cache.delete(id);
    return rows.length > 0;
  }

  /** The first unrevoked operator client, if any (the first-start admin, or the CLI's). */
  async operator(): Promise<Client | undefined> {
    const [row] = await this.db
      .select()
      .from(authClients)
      .where(sql`${authClients.kind} = 'operator' AND ${authClients.revokedAt} IS NULL`)
      .orderBy(asc(authClients.createdAt))
      .limit(1);
    return row as Client | undefined;
  }
}
