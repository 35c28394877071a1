import { badRequest } from './outcome.js';

/**
 * Paging cursors are opaque to clients: base64url JSON of the position to continue
 * from. They carry no server state, so any replica can serve the next page.
 */
export function encodeCursor(position: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

export function decodeCursor<T extends Record<string, unknown>>(token: string, check: (v: Record<string, unknown>) => v is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || !check(value as Record<string, unknown>)) {
    throw badRequest('The paging cursor is not valid; start again from the first page');
  }
  return value as T;
}
