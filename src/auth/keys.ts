import { randomUUID } from 'node:crypto';
import { desc, isNull, lt, sql } from 'drizzle-orm';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Db } from '../db/client.js';
import { authKeys } from '../db/schema.js';

/** Fascia signs its access tokens with ES384 (P-384). */
export const SIGNING_ALG = 'ES384';
// Any constant works; it only has to be the same for every Fascia process (server, CLI).
const KEY_LOCK = 0x66617363 + 1;
/** How long key rows are trusted in memory; a new kid is looked up at once anyway. */
const CACHE_MS = 5_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
}

interface KeyRow {
  kid: string;
  alg: string;
  privateJwk: unknown;
  publicJwk: unknown;
  retiredAt: Date | null;
}

/**
 * Fascia's signing keys, kept in Postgres so every replica and the CLI sign and verify
 * with the same ones. A retired key stays for `tokenTtl` seconds (plus a minute of clock
 * slack) after it was retired: the longest any token it signed can live.
 */
export class KeyStore {
  private cached: { at: number; rows: KeyRow[] } | undefined;
  private readonly imported = new Map<string, Promise<CryptoKey>>();
  /** The kids last seen live, to notice a change made here or by another process (`cli key rotate`). */
  private seen: string | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly db: Db,
    private readonly tokenTtl: number,
  ) {}

  private keepAfterRetired(): Date {
    return new Date(Date.now() - (this.tokenTtl + 60) * 1000);
  }

  private async rows(fresh = false): Promise<KeyRow[]> {
    if (!fresh && this.cached && Date.now() - this.cached.at < CACHE_MS) return this.cached.rows;
    const rows = await this.db
      .select({ kid: authKeys.kid, alg: authKeys.alg, privateJwk: authKeys.privateJwk, publicJwk: authKeys.publicJwk, retiredAt: authKeys.retiredAt })
      .from(authKeys)
      .orderBy(desc(authKeys.createdAt));
    const keep = this.keepAfterRetired();
    const live = rows.filter((r) => !r.retiredAt || r.retiredAt > keep);
    this.cached = { at: Date.now(), rows: live };
    const kids = live.map((r) => `${r.kid}:${r.retiredAt ? 'retired' : 'current'}`).join(' ');
    if (this.seen !== undefined && this.seen !== kids) this.changed();
    this.seen = kids;
    return live;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  /** Calls `listener` whenever the set of live keys changes (a rotation, a retired key past its retention). */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** Whether a kid is still live: a current key, or a retired one within its retention. From the rows cached at most CACHE_MS. */
  async has(kid: string): Promise<boolean> {
    return (await this.rows()).some((r) => r.kid === kid);
  }

  private importKey(row: KeyRow, which: 'private' | 'public'): Promise<CryptoKey> {
    const id = `${which}:${row.kid}`;
    let key = this.imported.get(id);
    if (!key) {
      key = importJWK((which === 'private' ? row.privateJwk : row.publicJwk) as JWK, row.alg) as Promise<CryptoKey>;
      this.imported.set(id, key);
    }
    return key;
  }

  /** Makes a new current key and retires the others (kept until their tokens expire); prunes keys past that. Returns the new kid. */
  async rotate(): Promise<string> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${KEY_LOCK})`);
      const kid = await insertKey(tx as unknown as Db);
      await tx.update(authKeys).set({ retiredAt: new Date() }).where(sql`${authKeys.retiredAt} IS NULL AND ${authKeys.kid} <> ${kid}`);
      await tx.delete(authKeys).where(lt(authKeys.retiredAt, this.keepAfterRetired()));
      this.cached = undefined;
      return kid;
    }).then((kid) => {
      this.changed();
      return kid;
    });
  }

  /** The key that signs: the newest unretired one, made on first use. */
  async current(): Promise<SigningKey> {
    let row = (await this.rows()).find((r) => !r.retiredAt);
    if (!row) {
      await this.db.transaction(async (tx) => {
        await tx.execute(sql`SELECT pg_advisory_xact_lock(${KEY_LOCK})`);
        const [existing] = await tx.select({ kid: authKeys.kid }).from(authKeys).where(isNull(authKeys.retiredAt)).limit(1);
        if (!existing) await insertKey(tx as unknown as Db);
      });
      row = (await this.rows(true)).find((r) => !r.retiredAt)!;
    }
    return { kid: row.kid, alg: row.alg, privateKey: await this.importKey(row, 'private') };
  }

  /** The public key for a kid, current or retired but not yet past its tokens' lifetime; undefined if unknown. */
  async publicKey(kid: string): Promise<{ key: CryptoKey; alg: string } | undefined> {
    // Fascia's kids are UUIDs: any other kid costs no database query.
    if (!UUID.test(kid)) return undefined;
    let row = (await this.rows()).find((r) => r.kid === kid);
    // A kid not seen yet may be a key another process just made (`cli key rotate`).
    if (!row) row = (await this.rows(true)).find((r) => r.kid === kid);
    return row && { key: await this.importKey(row, 'public'), alg: row.alg };
  }

  /** The JWKS published at /auth/jwks: the current key and the retired ones still kept. */
  async jwks(): Promise<{ keys: JWK[] }> {
    return { keys: (await this.rows()).map((r) => ({ ...(r.publicJwk as JWK), kid: r.kid, alg: r.alg, use: 'sig' })) };
  }

  /** Forgets the cached rows (tests, after a change made elsewhere). */
  forget(): void {
    this.cached = undefined;
  }
}

async function insertKey(db: Db): Promise<string> {
  const kid = randomUUID();
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  await db.insert(authKeys).values({ kid, alg: SIGNING_ALG, privateJwk, publicJwk });
  return kid;
}

