/**
 * Incremental sync as the README tells a client to do it — walk
 * `GET /fhir/_history?_since=S` (following next links), then use that Bundle's
 * `meta.lastUpdated` as the next S — run in a loop while writers create, update and
 * delete on several connections, one by one and in transaction Bundles. Every
 * committed version must be seen exactly once across the windows: none skipped
 * (the bug class that cost HAPI users data), none repeated.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { entries, link, localPath, versionKey, type Json } from '../support.js';

const WRITERS = 6;
const WRITES_PER_WRITER = Number(process.env.SYNC_RACE_WRITES ?? 300);

t.test('a syncing client sees every committed version exactly once while writers race it', async (t) => {
  const { app, database } = await buildTestApp(t);

  /** A client syncing one history (system or type level) window after window. */
  const client = (path: string) => ({ path, seen: new Map<string, number>(), windows: 0, since: '1970-01-01T00:00:00.000Z' });
  const system = client('/fhir/_history');
  const patients = client('/fhir/Patient/_history');

  /** One window: every page from `_since`, then the next `_since`. */
  async function syncOnce(c: ReturnType<typeof client>): Promise<number> {
    const { seen, since } = c;
    let url: string | undefined = `${c.path}?_since=${encodeURIComponent(since)}&_count=100`;
    let next = since;
    let got = 0;
    while (url) {
      const res = await app.inject({ url });
      if (res.statusCode !== 200) throw new Error(`GET ${url} → ${res.statusCode} ${res.body}`);
      const bundle = res.json() as Json;
      next = bundle.meta.lastUpdated as string;
      for (const e of entries(bundle)) {
        const key = versionKey(e);
        seen.set(key, (seen.get(key) ?? 0) + 1);
        got++;
      }
      const more = link(bundle, 'next');
      url = more === undefined ? undefined : localPath(more);
    }
    if (Date.parse(next) < Date.parse(since)) t.fail(`${c.path}: the sync point moved back from ${since} to ${next}`);
    c.since = next;
    c.windows++;
    return got;
  }

  async function writer(w: number): Promise<void> {
    const mine: string[] = [];
    for (let i = 0; i < WRITES_PER_WRITER; i++) {
      const choice = (i * 7 + w) % 10;
      if (choice < 4 || mine.length === 0) {
        const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient(`W${w}-${i}`) });
        if (res.statusCode === 201) mine.push(res.json().id as string);
      } else if (choice < 7) {
        const id = mine[i % mine.length]!;
        await app.inject({ method: 'PUT', url: `/fhir/Patient/${id}`, headers: fhirHeaders(), payload: { ...patient(`W${w}-${i}u`), id } });
      } else if (choice < 8) {
        const id = mine.splice(i % mine.length, 1)[0]!;
        await app.inject({ method: 'DELETE', url: `/fhir/Patient/${id}` });
      } else {
        // A transaction of several entries: one commit, many versions, a longer time in flight.
        const size = 5 + (i % 20);
        const entry = Array.from({ length: size }, (_, k) => ({
          fullUrl: `urn:uuid:00000000-0000-4000-8000-${String(w).padStart(4, '0')}${String(i * 100 + k).padStart(8, '0')}`,
          resource: { resourceType: 'Observation', status: 'final', code: { text: `w${w} t${i} e${k}` } },
          request: { method: 'POST', url: 'Observation' },
        }));
        await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(), payload: { resourceType: 'Bundle', type: 'transaction', entry } });
      }
    }
  }

  let writing = true;
  const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w))).finally(() => {
    writing = false;
  });
  const loop = async (c: ReturnType<typeof client>) => {
    while (writing) await syncOnce(c);
  };
  await Promise.all([loop(system), loop(patients), writers]);
  // Writers done, every write answered (committed). A client has everything once its sync
  // point is past the last version committed: until then a window may rightly hold versions
  // back while some other transaction that began before them is still in flight (the audit's
  // batch of the client's own reads, on a loaded machine), so empty windows prove nothing.
  const last = await database.pool.query<{ at: Date | null }>(`SELECT max(last_updated) AS at FROM resource_history WHERE resource_type <> 'AuditEvent'`);
  const lastCommitted = last.rows[0]!.at!.getTime();
  for (const c of [system, patients]) {
    for (let windows = 0; Date.parse(c.since) <= lastCommitted; windows++) {
      if (windows >= 500) {
        t.fail(`${c.path}: the sync point stayed at ${c.since}, not past the last commit, for 500 windows`);
        break;
      }
      if ((await syncOnce(c)) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const committed = await database.pool.query<{ key: string; type: string }>(
    // AuditEvents (one per request) are outside system/*.cruds, so the client never sees them.
    `SELECT resource_type AS type, resource_type || '/' || id || '/' || version_id AS key FROM resource_history WHERE resource_type <> 'AuditEvent'`,
  );
  for (const [c, rows] of [
    [system, committed.rows],
    [patients, committed.rows.filter((r) => r.type === 'Patient')],
  ] as const) {
    const all = new Set(rows.map((r) => r.key));
    const missing = [...all].filter((k) => !c.seen.has(k));
    const repeated = [...c.seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
    const unknown = [...c.seen.keys()].filter((k) => !all.has(k));
    t.ok(all.size > WRITERS * 10, `${c.path}: ${all.size} versions committed over ${c.windows} sync windows`);
    t.same(missing.slice(0, 20), [], `${c.path}: no committed version skipped (${missing.length} missing)`);
    t.same(repeated.slice(0, 20), [], `${c.path}: no version seen twice (${repeated.length} repeated)`);
    t.same(unknown.slice(0, 20), [], `${c.path}: nothing seen that was not committed`);
  }
});
