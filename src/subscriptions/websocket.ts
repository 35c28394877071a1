import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Queryable } from '../db/client.js';
import type { Content } from './model.js';
import { loadEvents, notificationBundle, type Described } from './notification.js';

/** Where websocket Subscriptions bind (Subscriptions Backport: the websocket-url $get-ws-binding-token names). */
export const WS_PATH = '/fhir/$subscription-ws';
/** A binding token works once, within this many seconds. */
export const BINDING_TTL_SECONDS = 60;
/** A connection that has bound nothing within this long is closed. */
const BIND_WITHIN_MS = 10_000;
/** Frames a client may send are short commands. */
const MAX_FRAME = 4096;

const hashOf = (token: string) => createHash('sha256').update(token).digest('hex');

/** A new binding token for a websocket Subscription (only its hash is stored). */
export async function bindingToken(db: Queryable, subscriptionId: string): Promise<{ token: string; expires: Date }> {
  const token = randomBytes(32).toString('base64url');
  const rows = await db.execute(sql`INSERT INTO subscription_ws_tokens (token_hash, subscription_id, expires_at)
    VALUES (${hashOf(token)}, ${subscriptionId}, now() + make_interval(secs => ${BINDING_TTL_SECONDS})) RETURNING expires_at`);
  await db.execute(sql`DELETE FROM subscription_ws_tokens WHERE expires_at < now()`);
  return { token, expires: new Date((rows.rows[0] as { expires_at: string }).expires_at) };
}

/** The websocket URL of a base URL (http → ws, https → wss). */
export const websocketUrl = (baseUrl: string) => `${baseUrl.replace(/^http/, 'ws')}${WS_PATH}`;

interface Bound {
  id: string;
  /** The last event number sent on this connection. */
  cursor: number;
  content: Content;
  topic: string | null;
  heartbeatMs: number | null;
  lastSent: number;
}

interface SubRow {
  id: string;
  status: string;
  topic: string | null;
  content: Content;
  heartbeat_seconds: number | null;
  last: string;
}

async function subscriptionRow(db: Queryable, id: string): Promise<SubRow | undefined> {
  const rows = await db.execute(sql`SELECT s.id, s.status, s.topic, s.content, s.heartbeat_seconds,
      (SELECT coalesce(max(e.event_number), 0) FROM subscription_events e WHERE e.subscription_id = s.id) AS last
    FROM subscriptions s WHERE s.id = ${id} AND s.channel = 'websocket' AND s.status <> 'off'
      AND NOT EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = 'Subscription' AND r.id = s.id AND r.deleted)`);
  return rows.rows[0] as unknown as SubRow | undefined;
}

/**
 * The websocket channel. The upgrade at WS_PATH is not a Fastify route (no token can ride
 * a browser's websocket handshake); the connection proves itself instead: within 10 s it
 * sends `bind-with-token: <token>`, a one-time token that $get-ws-binding-token gave the
 * Subscription's owner, or it is closed (1008). Once bound, it gets a handshake Bundle
 * (whose events-since-subscription-start tells the client where its numbering stands),
 * then every later event of the subscription as the same history Bundles rest-hook
 * sends, and heartbeats. Events are read from Postgres, so a connection to any process
 * sees every event; what a client missed while disconnected it replays with $events by
 * number. A connection may bind several subscriptions. On SIGTERM (app.draining) every
 * connection is closed with 1001.
 */
export function attachWebsocket(app: FastifyInstance, db: Queryable): void {
  const config = app.config.subscriptions;
  const fhirBase = `${app.config.baseUrl}/fhir`;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
  const connections = new Map<WebSocket, Bound[]>();

  const send = (ws: WebSocket, b: Bound, type: 'handshake' | 'heartbeat' | 'event-notification', last: number, events: Awaited<ReturnType<typeof loadEvents>>) => {
    const described: Described = { id: b.id, status: 'active', topic: b.topic, last };
    ws.send(notificationBundle(fhirBase, described, type, events, b.content));
    b.lastSent = Date.now();
  };

  const bind = async (ws: WebSocket, text: string) => {
    const m = /^bind-with-token:?\s+(\S+)\s*$/.exec(text);
    if (!m) return ws.close(1008, 'expected: bind-with-token: <token>');
    const rows = await db.execute(sql`DELETE FROM subscription_ws_tokens WHERE token_hash = ${hashOf(m[1]!)} AND expires_at > now() RETURNING subscription_id`);
    const id = (rows.rows[0] as { subscription_id: string } | undefined)?.subscription_id;
    const s = id === undefined ? undefined : await subscriptionRow(db, id);
    if (!s) return ws.close(1008, 'the binding token is unknown, used or expired');
    const b: Bound = { id: s.id, cursor: Number(s.last), content: s.content, topic: s.topic, heartbeatMs: s.heartbeat_seconds ? s.heartbeat_seconds * 1000 : null, lastSent: 0 };
    connections.get(ws)?.push(b);
    send(ws, b, 'handshake', b.cursor, []);
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH || app.draining) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections.set(ws, []);
      const timer = setTimeout(() => connections.get(ws)?.length || ws.close(1008, 'nothing bound within 10 s'), BIND_WITHIN_MS);
      timer.unref();
      ws.on('message', (data, isBinary) => {
        if (isBinary) return ws.close(1003, 'text frames only');
        bind(ws, data.toString()).catch((err) => {
          app.log.error({ err }, 'websocket bind failed');
          ws.close(1011, 'server error');
        });
      });
      ws.on('close', () => connections.delete(ws));
      ws.on('error', () => connections.delete(ws));
    });
  };
  app.server.on('upgrade', onUpgrade);

  // One loop per process: each bound subscription's new events, read from Postgres.
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      if (app.draining) {
        // Closed with 1001 (a client reconnects elsewhere); one that does not answer the close is cut a second later.
        for (const ws of connections.keys()) {
          ws.close(1001, 'server shutting down');
          setTimeout(() => ws.terminate(), 1000).unref();
        }
        connections.clear();
      }
      for (const [ws, bound] of connections) {
        for (const b of bound) {
          try {
            const s = await subscriptionRow(db, b.id);
            if (!s) {
              ws.close(1000, `Subscription/${b.id} is off or deleted`);
              break;
            }
            const last = Number(s.last);
            if (last > b.cursor) {
              const events = await loadEvents(db, b.id, b.cursor + 1, last, config.maxCount);
              if (events.length) {
                b.cursor = events.at(-1)!.eventNumber;
                send(ws, b, 'event-notification', last, events);
              }
            } else if (b.heartbeatMs && Date.now() - b.lastSent >= b.heartbeatMs) send(ws, b, 'heartbeat', last, []);
          } catch (err) {
            if (!stopped) app.log.error({ err }, 'websocket delivery failed; retrying');
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, config.pollMs).unref());
    }
  })();
  app.addHook('onClose', async () => {
    stopped = true;
    app.server.off('upgrade', onUpgrade);
    for (const ws of connections.keys()) ws.terminate();
    await loop;
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
}
