/**
 * The soak (issue 9): many connections for a while, mixed create, read, search and
 * history against a real Postgres, over real HTTP, counting every answer that is not
 * the one expected. The server runs as `node dist/server.js`; the load comes from this
 * process through one keep-alive agent with a connection per virtual client.
 */
import http from 'node:http';
import { authHeaders, ensureDatabase, startServer } from './lib.js';

/** One HTTP request on a keep-alive agent: status and body text. */
function send(agent: http.Agent, url: string, init: { method?: string; body?: string; headers?: Record<string, string> }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

export interface SoakFigures {
  connections: number;
  seconds: number;
  requests: number;
  errors: number;
  serverErrors: number;
  unexpected: Record<string, number>;
  kinds: Record<string, { n: number; p50: number; p95: number; p99: number }>;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

export async function soak(url: string, connections: number, seconds: number): Promise<SoakFigures> {
  await ensureDatabase(url, true);
  // One client sends everything here, so the per-client rate limit is off for the soak.
  const server = await startServer(url, { RATE_LIMIT: '0' });

  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: Record<string, number[]> = { create: [], read: [], search: [], history: [] };
  const unexpected: Record<string, number> = {};
  let errors = 0;
  let serverErrors = 0;
  const patients: string[] = [];
  const observations: string[] = [];
  const bearer = authHeaders();
  const json = { ...bearer, 'content-type': 'application/fhir+json' };

  const call = async (kind: string, path: string, init: { method?: string; body?: string; headers?: Record<string, string> }, expect: number) => {
    const t = performance.now();
    try {
      const res = await send(agent, server.base + path, { ...init, headers: { ...bearer, ...init.headers } });
      const text = res.text;
      latencies[kind]!.push(performance.now() - t);
      if (res.status >= 500) serverErrors++;
      if (res.status !== expect) unexpected[`${kind} ${res.status}`] = (unexpected[`${kind} ${res.status}`] ?? 0) + 1;
      return res.status === expect ? text : undefined;
    } catch {
      errors++;
      return undefined;
    }
  };

  // A few patients to hang the measurements on.
  for (let i = 0; i < 50; i++) {
    const text = await call('create', '/fhir/Patient', { method: 'POST', headers: json, body: JSON.stringify({ resourceType: 'Patient', name: [{ family: `Soak${i}` }] }) }, 201);
    if (text) patients.push((JSON.parse(text) as { id: string }).id);
  }
  const started = new Date().toISOString();
  const end = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const patient = patients[(c + i) % patients.length]!;
        const pick = (c * 31 + i * 7) % 10;
        n++;
        if (pick < 4 || observations.length === 0) {
          const body = JSON.stringify({
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
            subject: { reference: `Patient/${patient}` },
            effectiveDateTime: new Date().toISOString(),
            valueQuantity: { value: i % 11, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
          });
          const text = await call('create', '/fhir/Observation', { method: 'POST', headers: json, body }, 201);
          if (text) observations.push((JSON.parse(text) as { id: string }).id);
        } else if (pick < 7) {
          await call('read', `/fhir/Observation/${observations[(c * 13 + i) % observations.length]}`, {}, 200);
        } else if (pick < 9) {
          await call('search', `/fhir/Observation?patient=${patient}&code=http://loinc.org%7C72514-3&_count=20`, {}, 200);
        } else {
          await call('history', `/fhir/Observation/_history?_since=${encodeURIComponent(started)}&_count=50`, {}, 200);
        }
      }
    }),
  );
  agent.destroy();
  await server.stop();
  const kinds = Object.fromEntries(
    Object.entries(latencies).map(([k, list]) => {
      list.sort((a, b) => a - b);
      return [k, { n: list.length, p50: pct(list, 50), p95: pct(list, 95), p99: pct(list, 99) }];
    }),
  );
  return { connections, seconds, requests: n, errors, serverErrors, unexpected, kinds };
}
