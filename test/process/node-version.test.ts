/**
 * `node dist/server.js` on a Node that is not 24 (these machines ship Node 20 on PATH)
 * stops with one line saying which Node is needed and how, and exit 1: not a page of
 * minified source ending in `ReferenceError: WebSocket is not defined`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';

/** A Node binary other than 24 on this machine, if there is one. */
function otherNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue;
    const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
    if (!version.startsWith('v24.')) return candidate;
  }
  return undefined;
}

const node = otherNode();
t.test('node dist/server.js on another Node: one line, exit 1', { skip: node ? false : 'no Node other than 24 on this machine' }, async (t) => {
  // dist/ is made by npm ci (prepare) and npm start; build it if this checkout has none.
  if (!existsSync('dist/server.js')) execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'ignore' });
  const run = spawnSync(node!, ['dist/server.js'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, PORT: '0' } });
  t.equal(run.status, 1, 'exit 1');
  const lines = run.stderr.trim().split('\n');
  t.equal(lines.length, 1, 'one line on stderr');
  t.match(lines[0], /Fascia needs Node 24 \(this is Node \d+\.\d+\.\d+\)/, 'says which Node is needed and which this is');
  t.match(lines[0], /npm start/, 'and how to run it');
  t.equal(run.stdout, '', 'nothing on stdout');
});
