import { readFileSync, renameSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Two Postgres processes cannot share one cluster, so a Fascia running the embedded
 * Postgres leaves where it listens in DATA_DIR (mode 0600: it holds the password) for
 * the operators' CLI to reach the same database. Removed when the server exits.
 */
export interface ConnectionInfo {
  /** postgres://… of the running embedded Postgres. */
  url: string;
  /** The server process that owns it. */
  pid: number;
  /** The server's public URL (tokens the CLI mints are for it). */
  baseUrl: string;
}

export const connectionFilePath = (dataDir: string) => path.resolve(dataDir, 'fascia-connection.json');

export function writeConnectionFile(dataDir: string, info: ConnectionInfo): void {
  const file = connectionFilePath(dataDir);
  mkdirSync(path.dirname(file), { recursive: true });
  const staging = `${file}.${process.pid}.tmp`;
  writeFileSync(staging, `${JSON.stringify(info)}\n`, { mode: 0o600 });
  renameSync(staging, file);
  process.once('exit', () => {
    if (readConnectionFile(dataDir, { anyPid: true })?.pid === process.pid) rmSync(file, { force: true });
  });
}

/** The running server's connection, or undefined when there is none (no file, or its process is gone). */
export function readConnectionFile(dataDir: string, { anyPid = false } = {}): ConnectionInfo | undefined {
  let info: ConnectionInfo;
  try {
    info = JSON.parse(readFileSync(connectionFilePath(dataDir), 'utf8')) as ConnectionInfo;
  } catch {
    return undefined;
  }
  if (typeof info?.url !== 'string' || typeof info.pid !== 'number') return undefined;
  if (anyPid) return info;
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return info;
}
