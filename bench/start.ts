/**
 * `BENCH_ONLY=start npm run bench`: how long a start takes to a ready `/readyz`, measured
 * from outside (spawn → first 200), median of several runs, and where the time goes
 * (the `startTimes` of the server's `Fascia is up` log record). Writes the "Start"
 * section of bench/README.md through bench/run.ts.
 *
 *   - `npm start`, embedded Postgres already initialised, dist/ current (no build);
 *   - `node dist/server.js`, the same (npm's own start-up left out);
 *   - `node dist/server.js` on DATABASE_URL (migrated database);
 *   - the first-ever start: an empty DATA_DIR (initdb, migrations, Fascia's definitions stored);
 *   - `npm run build` (what a start after a source change adds).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDatabase, machineNote } from './lib.js';

const RUNS = Number(process.env.BENCH_START_RUNS ?? 7);

interface Run {
  /** Spawn to the first 200 from /readyz, ms. */
  ready: number;
  /** From the `Fascia is up` record: ms since the process began (node's clock), and CPU ms by listening. */
  startTimes: Record<string, number>;
  /** `Fascia is up` (listening) to "R4 definitions indexed" (/readyz is 503 until then), ms by the server's clock. */
  indexedAfter?: number;
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

let nextPort = 21_000 + Math.floor(Math.random() * 500);

/** Starts `command`, polls /readyz every 5 ms until 200, reads the log, stops it (SIGTERM to its group). */
async function timeStart(command: string[], env: Record<string, string | undefined>): Promise<Run> {
  const port = nextPort++;
  const { DATABASE_URL: _inherited, ...inherited } = process.env;
  const began = performance.now();
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...inherited, PORT: String(port), HOST: '127.0.0.1', BASE_URL: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  let errors = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (errors += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  let ready = NaN;
  while (!gone) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) {
        ready = performance.now() - began;
        break;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  if (Number.isNaN(ready)) throw new Error(`${command.join(' ')} ended before it was ready:\n${errors}`);
  // The definitions are indexed after listening; wait for that line (or give up after 30 s).
  for (let i = 0; i < 600 && !/R4 definitions indexed/.test(log); i++) await new Promise((r) => setTimeout(r, 50));
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
  const records = log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const up = records.find((r) => r.msg === 'Fascia is up');
  const indexed = records.find((r) => r.msg === 'R4 definitions indexed');
  return {
    ready,
    startTimes: (up?.startTimes as Record<string, number>) ?? {},
    indexedAfter: up && indexed ? (indexed.time as number) - (up.time as number) : undefined,
  };
}

/** Wall ms of one command run to its end (exit 0 required), with DATABASE_URL set. */
async function timeCommand(command: string[], env: Record<string, string | undefined>): Promise<number> {
  const began = performance.now();
  const child = spawn(command[0]!, command.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  child.stderr!.on('data', (d) => (errors += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${command.join(' ')} exited ${code}:\n${errors}`);
  return performance.now() - began;
}

/** The "## Start" section of bench/README.md. */
export async function startSection(externalUrl: string): Promise<string[]> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'fascia-bench-start-'));
  try {
    const built = performance.now();
    await new Promise<void>((resolve, reject) =>
      spawn(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build exit ${code}`)))),
    );
    const buildSeconds = (performance.now() - built) / 1000;

    const dataDir = path.join(root, 'data');
    // The first start initialises DATA_DIR; it is measured apart (fresh directories below).
    await timeStart([process.execPath, 'dist/server.js'], { DATA_DIR: dataDir });
    await ensureDatabase(externalUrl, true);
    await timeStart([process.execPath, 'dist/server.js'], { DATABASE_URL: externalUrl }); // migrates it

    const results: [string, Run[]][] = [];
    // Alternating kinds, so a burst of load on the shared machine does not land on one kind only.
    const kinds: [string, (i: number) => Promise<Run>][] = [
      ['`npm start`, embedded Postgres', () => timeStart(['npm', 'start', '--silent'], { DATA_DIR: dataDir })],
      ['`node dist/server.js`, embedded Postgres', () => timeStart([process.execPath, 'dist/server.js'], { DATA_DIR: dataDir })],
      ['`node dist/server.js`, DATABASE_URL (local Postgres)', () => timeStart([process.execPath, 'dist/server.js'], { DATABASE_URL: externalUrl })],
      ['first-ever start: `npm start` on an empty DATA_DIR (initdb)', (i) => timeStart(['npm', 'start', '--silent'], { DATA_DIR: path.join(root, `fresh-${i}`) })],
    ];
    const collected = new Map<string, Run[]>(kinds.map(([label]) => [label, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const [label, one] of kinds) {
        if (label.startsWith('first-ever') && i >= Math.min(RUNS, 3)) continue;
        collected.get(label)!.push(await one(i));
      }
    }
    // The operator CLI minting a token (issue 22: under 1 s), on the migrated database.
    const cliKinds: [string, string[]][] = [
      ['`npm run --silent cli -- token`', ['npm', 'run', '--silent', 'cli', '--', 'token', '--scope', 'system/*.rs']],
      ['`node dist/cli.js token`', [process.execPath, 'dist/cli.js', 'token', '--scope', 'system/*.rs']],
    ];
    const cli = new Map<string, number[]>(cliKinds.map(([label]) => [label, []]));
    for (let i = 0; i < RUNS; i++) for (const [label, command] of cliKinds) cli.get(label)!.push(await timeCommand(command, { DATABASE_URL: externalUrl }));
    for (const [label, out] of collected) {
      console.log(`${label}: ready ${out.map((r) => r.ready.toFixed(0)).join(', ')} ms`);
      results.push([label, out]);
    }

    const part = (out: Run[], key: string, from?: string) =>
      median(out.map((r) => (r.startTimes[key] ?? NaN) - (from ? (r.startTimes[from] ?? NaN) : 0))).toFixed(0);
    const load = os.loadavg().map((l) => l.toFixed(1)).join(', ');
    return [
      '## Start',
      '',
      `Written by \`BENCH_ONLY=start npm run bench\` (bench/start.ts). Spawn → first 200 from \`/readyz\` (polled every 5 ms), median of ${RUNS} runs (3 for the first-ever start), kinds alternating; the parts are the server's own \`startTimes\` (its \`Fascia is up\` log record: ms since the process began; CPU = user + system ms used by then). ${machineNote()} (load average at the end: ${load}); CPU ms move less with load than wall times. Goal (issue 22): ready under 2 s with the embedded Postgres initialised.`,
      '',
      '| start | runs | ready (median) | min | max | modules loaded | database up | migrations checked | app built | listening | CPU by listening | then definitions indexed |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|',
      ...results.map(([label, out]) => {
        const ready = out.map((r) => r.ready);
        const indexed = out.map((r) => r.indexedAfter ?? NaN).filter((v) => !Number.isNaN(v));
        return `| ${label} | ${out.length} | **${median(ready).toFixed(0)} ms** | ${Math.min(...ready).toFixed(0)} | ${Math.max(...ready).toFixed(0)} | ${part(out, 'loaded')} | +${part(out, 'database', 'loaded')} | +${part(out, 'migrations', 'database')} | +${part(out, 'app', 'migrations')} | +${part(out, 'listening', 'app')} | ${part(out, 'cpu')} | ${indexed.length ? `${median(indexed).toFixed(0)} ms` : '–'} |`;
      }),
      '',
      `The operator CLI minting a token on the same local Postgres (DATABASE_URL), wall time from spawn to exit, median of ${RUNS} runs, alternating (goal, issue 22: under 1 s):`,
      '',
      '| command | runs | median | min | max |',
      '|---|---|---|---|---|',
      ...[...cli].map(([label, out]) => `| ${label} | ${out.length} | **${median(out).toFixed(0)} ms** | ${Math.min(...out).toFixed(0)} | ${Math.max(...out).toFixed(0)} |`),
      '',
      `\`npm run build\` (esbuild bundle + trimmed R4 files, no type check): ${buildSeconds.toFixed(1)} s; \`npm start\` runs it only when the sources changed (\`scripts/build.mjs --if-stale\`, a hash of src/, the lock file and the build script), and \`npm ci\` runs it once (\`prepare\`).`,
      '',
      'What the start does and what was cut (profiled with `--cpu-prof`, in CPU share of the start before the change): importing the compiled modules, most of it Node resolving every file of drizzle-orm against its 179 KB `exports` map (now bundled into dist/fascia.js; V8\'s compile cache keeps compiled code in dist/.compile-cache); reading and parsing profiles-resources.json twice (35 MB; now read once, 8 MB trimmed at build); indexing the R4 StructureDefinitions (about a quarter; now a few at a time from before the database opens, so the CPU work fills the time the start spends waiting for Postgres, with `/healthz` answering once listening and `/readyz` 503 until done, so "ready" includes it; a write or `_summary` search in the meantime finishes them first; the build drops the elements\' invariants, a third of the file, which Fascia\'s validation never reads); compiling every route\'s validators for 146 types (now at each route\'s first request); compiling 2,574 search-parameter expressions for all types (now per type at first use; the four soft-tissue types at start, for the OpenAPI document); the CapabilityStatement (now at the first `/metadata`). What is left: Fastify and @fastify/swagger registering the routes of 146 types, the embedded Postgres start, the migrations check and the check that Fascia\'s definitions are stored unchanged.',
      '',
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
