/**
 * A real HTTP receiver for rest-hook notifications: it records every POST (headers and
 * body) and can be taken down (its port closed: connections refused) and brought back on
 * the same port.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  json?: Record<string, any>;
}

export interface Receiver {
  url: string;
  host: string;
  received: Received[];
  /** Answers with this status instead of 200 while set. */
  status: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function receiver(t: { teardown(fn: () => unknown): void }, path = '/hook'): Promise<Receiver> {
  const received: Received[] = [];
  const r = { status: 200 } as Receiver;
  let port = 0;
  let server: http.Server | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          const entry: Received = { headers: req.headers, body };
          if (body) entry.json = JSON.parse(body);
          if (r.status >= 200 && r.status < 300) received.push(entry);
          res.writeHead(r.status, { 'content-type': 'text/plain' }).end('receiver answer body (must not be stored)');
        });
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as AddressInfo).port;
        resolve();
      });
    });
  await listen();
  r.url = `http://127.0.0.1:${port}${path}`;
  r.host = `127.0.0.1:${port}`;
  r.received = received;
  r.down = () =>
    new Promise<void>((resolve) => {
      server!.closeAllConnections();
      server!.close(() => resolve());
    });
  r.up = listen;
  r.close = r.down;
  t.teardown(() => (server?.listening ? r.down() : undefined));
  return r;
}

/** The status Parameters of a notification Bundle (its first entry). */
export const statusOf = (bundle: Record<string, any>) => bundle.entry[0].resource as { parameter: { name: string; [k: string]: any }[] };

/** The event numbers a notification carries. */
export function eventNumbers(bundle: Record<string, any>): number[] {
  return statusOf(bundle)
    .parameter.filter((p) => p.name === 'notification-event')
    .map((p) => Number(p.part.find((x: { name: string }) => x.name === 'event-number').valueString));
}

export const param = (bundle: Record<string, any>, name: string): any => statusOf(bundle).parameter.find((p) => p.name === name);

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
