import { envSchema } from 'env-schema';

/** Everything Fascia reads from the environment, typed and checked once at start. */
export interface Config {
  port: number;
  host: string;
  /** Public URL used in Location, fullUrl and paging links; no trailing slash. */
  baseUrl: string;
  /** postgres://… of an external server; undefined → embedded Postgres under dataDir. */
  databaseUrl: string | undefined;
  /** postgres://… of a streaming replica of it for searches and history; undefined → all reads on the primary. */
  readDatabaseUrl: string | undefined;
  /** A replica further behind than this (ms) is not read from. */
  readMaxLagMs: number;
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  /** Connections in the pg pool. */
  dbPoolSize: number;
  /** Longest a request waits for a database connection (free or new) before a 503. */
  dbPoolWaitMs: number;
  /** Most entries a transaction or batch Bundle may carry. */
  maxBundleEntries: number;
  /** On SIGTERM/SIGINT, how long the listener stays open for requests in flight (and, after it closes, how long those still running get). */
  shutdownGraceMs: number;
  /** 'off' only for local development: no token is asked for (refused when NODE_ENV=production). */
  auth: 'on' | 'off';
  /** An external identity provider whose access tokens are accepted too (its `iss`). */
  authIssuer: string | undefined;
  /** The external issuer's JWKS; undefined → discovered from the issuer's .well-known documents. */
  authJwksUrl: string | undefined;
  /** Lifetime of the access tokens Fascia issues, in seconds (also the longest `exp − iat` accepted on them). */
  authTokenTtl: number;
  /** The longest lifetime (`exp − iat`, or `exp −` now without `iat`) of an external issuer's token that is accepted, in seconds. */
  authMaxTokenLifetime: number;
  /** Whether clients may authenticate with client_secret_basic (besides private_key_jwt). */
  authClientSecrets: boolean;
  /** Requests per minute per client (per IP without a token), counted in Postgres so replicas share them; 0 turns limiting off. */
  rateLimit: number;
  /** Origins a browser may call from (CORS); empty → CORS off. */
  /**
   * Which peers' X-Forwarded-For to believe (Fastify's trustProxy): false (none, the
   * default), a hop count, or addresses / CIDR ranges of the proxies in front.
   */
  trustProxy: false | number | string[];
  corsOrigins: string[];
  /** Bulk Data $export (src/bulk/). */
  bulk: BulkConfig;
  /** Subscriptions and their delivery (src/subscriptions/). */
  subscriptions: SubscriptionConfig;
}

export interface SubscriptionConfig {
  /** Hosts (host or host:port) whose rest-hook endpoints may be plain http; every other endpoint must be https. */
  allowHttp: string[];
  /** A subscription whose deliveries have failed for this long (seconds) gives up: status error, with the reason. */
  maxAgeSeconds: number;
  /** Longest one delivery (a POST to an endpoint) may take, in ms. */
  timeoutMs: number;
  /** The first retry's delay, doubled on each failure (with jitter), in ms. */
  retryBaseMs: number;
  /** The longest delay between retries, in ms. */
  retryMaxMs: number;
  /** Delivery workers this process runs (each delivers one subscription at a time); 0 → none. */
  workers: number;
  /** How often idle workers look for work, in ms. */
  pollMs: number;
  /** Events per notification at most (a subscription's max-count may ask for fewer). */
  maxCount: number;
  /** Seconds a delivered event is kept for $events. */
  retentionSeconds: number;
}

export interface BulkConfig {
  /** Exports a client may have queued or running at once; one more → 429. */
  maxPerClient: number;
  /** An output file is closed once it holds this many bytes (a file passes it only when one resource is larger). */
  fileBytes: number;
  /** Seconds a finished export's files are kept (then the status URL and the files are 404). */
  expirySeconds: number;
  /** Retry-After of a status answer, in seconds; a poll sooner than this → 429. */
  retryAfterSeconds: number;
  /** Resources read and written per committed batch (the unit of resumption). */
  batchSize: number;
  /** Export jobs this process works at once; 0 → this process works none (it still answers kick-offs and polls). */
  workers: number;
  /** A pause between batches, in ms: throttles an export in favour of other clients. */
  pauseMs: number;
}

interface RawEnv {
  PORT: number;
  HOST: string;
  BASE_URL?: string;
  DATABASE_URL?: string;
  READ_DATABASE_URL?: string;
  READ_MAX_LAG_MS: number;
  DATA_DIR: string;
  LOG_LEVEL: Config['logLevel'];
  BODY_LIMIT: number;
  DB_POOL_SIZE: number;
  DB_POOL_WAIT_MS: number;
  MAX_BUNDLE_ENTRIES: number;
  SHUTDOWN_GRACE_MS: number;
  AUTH: 'on' | 'off';
  AUTH_ISSUER?: string;
  AUTH_JWKS_URL?: string;
  AUTH_TOKEN_TTL: number;
  AUTH_MAX_TOKEN_LIFETIME: number;
  AUTH_CLIENT_SECRETS: 'on' | 'off';
  RATE_LIMIT: number;
  CORS_ORIGINS?: string;
  TRUST_PROXY?: string;
  NODE_ENV?: string;
  BULK_MAX_PER_CLIENT: number;
  BULK_FILE_BYTES: number;
  BULK_EXPIRY: number;
  BULK_RETRY_AFTER: number;
  BULK_BATCH_SIZE: number;
  BULK_WORKERS: number;
  BULK_PAUSE_MS: number;
  SUBSCRIPTION_ALLOW_HTTP?: string;
  SUBSCRIPTION_MAX_AGE: number;
  SUBSCRIPTION_TIMEOUT_MS: number;
  SUBSCRIPTION_RETRY_BASE_MS: number;
  SUBSCRIPTION_RETRY_MAX_MS: number;
  SUBSCRIPTION_WORKERS: number;
  SUBSCRIPTION_POLL_MS: number;
  SUBSCRIPTION_MAX_COUNT: number;
  SUBSCRIPTION_RETENTION: number;
}

const schema = {
  type: 'object',
  properties: {
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    HOST: { type: 'string', minLength: 1, default: '0.0.0.0' },
    BASE_URL: { type: 'string', pattern: '^https?://[^\\s]+$' },
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    READ_DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    READ_MAX_LAG_MS: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 5_000 },
    DATA_DIR: { type: 'string', minLength: 1, default: './data' },
    LOG_LEVEL: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    BODY_LIMIT: { type: 'integer', minimum: 1024, default: 50 * 1024 * 1024 },
    DB_POOL_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    DB_POOL_WAIT_MS: { type: 'integer', minimum: 1, maximum: 600_000, default: 5_000 },
    // Read by src/domain/codes.ts at import; checked here so a bad value stops the start.
    CANONICAL_BASE: { type: 'string', pattern: '^https?://[^\\s]+$' },
    MAX_BUNDLE_ENTRIES: { type: 'integer', minimum: 1, default: 20000 },
    SHUTDOWN_GRACE_MS: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 10_000 },
    AUTH: { type: 'string', enum: ['on', 'off'], default: 'on' },
    AUTH_ISSUER: { type: 'string', pattern: '^https?://[^\\s]+$' },
    AUTH_JWKS_URL: { type: 'string', pattern: '^https?://[^\\s]+$' },
    AUTH_TOKEN_TTL: { type: 'integer', minimum: 10, maximum: 86_400, default: 300 },
    AUTH_MAX_TOKEN_LIFETIME: { type: 'integer', minimum: 10, maximum: 86_400, default: 3600 },
    AUTH_CLIENT_SECRETS: { type: 'string', enum: ['on', 'off'], default: 'off' },
    RATE_LIMIT: { type: 'integer', minimum: 0, default: 6000 },
    CORS_ORIGINS: { type: 'string', pattern: '^\\s*(https?://[^\\s,]+\\s*(,\\s*https?://[^\\s,]+\\s*)*)?$' },
    // A hop count, or proxies' addresses / CIDR ranges (IPv4 or IPv6) and proxy-addr's names
    // (loopback, linklocal, uniquelocal), comma-separated. Not `true`: believing every peer's
    // X-Forwarded-For lets any client choose the address its rate limit and audit record name.
    TRUST_PROXY: { type: 'string', pattern: '^\\s*(\\d+|(loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(/\\d{1,3})?)(\\s*,\\s*(loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(/\\d{1,3})?))*)?\\s*$' },
    NODE_ENV: { type: 'string' },
    BULK_MAX_PER_CLIENT: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
    BULK_FILE_BYTES: { type: 'integer', minimum: 1024, default: 100 * 1024 * 1024 },
    BULK_EXPIRY: { type: 'integer', minimum: 1, default: 3600 },
    BULK_RETRY_AFTER: { type: 'integer', minimum: 1, maximum: 3600, default: 2 },
    BULK_BATCH_SIZE: { type: 'integer', minimum: 1, maximum: 100_000, default: 5000 },
    BULK_WORKERS: { type: 'integer', minimum: 0, maximum: 16, default: 1 },
    BULK_PAUSE_MS: { type: 'integer', minimum: 0, maximum: 60_000, default: 0 },
    SUBSCRIPTION_ALLOW_HTTP: { type: 'string', pattern: '^\\s*([A-Za-z0-9.\\-\\[\\]:]+\\s*(,\\s*[A-Za-z0-9.\\-\\[\\]:]+\\s*)*)?$' },
    SUBSCRIPTION_MAX_AGE: { type: 'integer', minimum: 1, maximum: 30 * 86_400, default: 86_400 },
    SUBSCRIPTION_TIMEOUT_MS: { type: 'integer', minimum: 100, maximum: 120_000, default: 5_000 },
    SUBSCRIPTION_RETRY_BASE_MS: { type: 'integer', minimum: 10, maximum: 3_600_000, default: 1_000 },
    SUBSCRIPTION_RETRY_MAX_MS: { type: 'integer', minimum: 10, maximum: 86_400_000, default: 300_000 },
    SUBSCRIPTION_WORKERS: { type: 'integer', minimum: 0, maximum: 64, default: 2 },
    SUBSCRIPTION_POLL_MS: { type: 'integer', minimum: 10, maximum: 60_000, default: 250 },
    SUBSCRIPTION_MAX_COUNT: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 },
    SUBSCRIPTION_RETENTION: { type: 'integer', minimum: 60, default: 7 * 86_400 },
  },
} as const;

export class ConfigError extends Error {}

/** Reads and checks the environment; throws ConfigError naming the bad variable. */
/** TRUST_PROXY as Fastify takes it: unset or empty → false; digits → hops; else the list. */
function trustProxyOf(value: string | undefined): Config['trustProxy'] {
  const v = (value ?? '').trim();
  if (!v) return false;
  if (/^\d+$/.test(v)) return Number(v);
  return v.split(',').map((a) => a.trim()).filter(Boolean);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  let raw: RawEnv;
  try {
    raw = envSchema<RawEnv>({ schema, data: env, dotenv: false });
  } catch (err) {
    // env-schema says e.g. "env/PORT must be <= 65535"
    throw new ConfigError(`Invalid configuration: ${(err as Error).message}`);
  }
  if (raw.READ_DATABASE_URL && !raw.DATABASE_URL) {
    throw new ConfigError('READ_DATABASE_URL needs DATABASE_URL: a read replica streams from an external primary, not from the embedded Postgres');
  }
  if (raw.AUTH === 'off' && raw.NODE_ENV === 'production') {
    throw new ConfigError('AUTH=off is refused when NODE_ENV=production: anyone reaching the port could read and write every record');
  }
  const port = raw.PORT;
  return {
    port,
    host: raw.HOST,
    baseUrl: (raw.BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    databaseUrl: raw.DATABASE_URL || undefined,
    readDatabaseUrl: raw.READ_DATABASE_URL || undefined,
    readMaxLagMs: raw.READ_MAX_LAG_MS,
    dataDir: raw.DATA_DIR,
    logLevel: raw.LOG_LEVEL,
    bodyLimit: raw.BODY_LIMIT,
    dbPoolSize: raw.DB_POOL_SIZE,
    dbPoolWaitMs: raw.DB_POOL_WAIT_MS,
    maxBundleEntries: raw.MAX_BUNDLE_ENTRIES,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    auth: raw.AUTH,
    // Compared with `iss` exactly (some providers end theirs with a slash).
    authIssuer: raw.AUTH_ISSUER || undefined,
    authJwksUrl: raw.AUTH_JWKS_URL || undefined,
    authTokenTtl: raw.AUTH_TOKEN_TTL,
    authMaxTokenLifetime: raw.AUTH_MAX_TOKEN_LIFETIME,
    authClientSecrets: raw.AUTH_CLIENT_SECRETS === 'on',
    rateLimit: raw.RATE_LIMIT,
    // A browser's Origin has no trailing slash, so one left in the list would never match.
    corsOrigins: (raw.CORS_ORIGINS ?? '').split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean),
    trustProxy: trustProxyOf(raw.TRUST_PROXY),
    bulk: {
      maxPerClient: raw.BULK_MAX_PER_CLIENT,
      fileBytes: raw.BULK_FILE_BYTES,
      expirySeconds: raw.BULK_EXPIRY,
      retryAfterSeconds: raw.BULK_RETRY_AFTER,
      batchSize: raw.BULK_BATCH_SIZE,
      workers: raw.BULK_WORKERS,
      pauseMs: raw.BULK_PAUSE_MS,
    },
    subscriptions: {
      allowHttp: (raw.SUBSCRIPTION_ALLOW_HTTP ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
      maxAgeSeconds: raw.SUBSCRIPTION_MAX_AGE,
      timeoutMs: raw.SUBSCRIPTION_TIMEOUT_MS,
      retryBaseMs: raw.SUBSCRIPTION_RETRY_BASE_MS,
      retryMaxMs: raw.SUBSCRIPTION_RETRY_MAX_MS,
      workers: raw.SUBSCRIPTION_WORKERS,
      pollMs: raw.SUBSCRIPTION_POLL_MS,
      maxCount: raw.SUBSCRIPTION_MAX_COUNT,
      retentionSeconds: raw.SUBSCRIPTION_RETENTION,
    },
  };
}
