/** src/bulk/access.ts: whether a token's access to a type is as wide as an export was planned with (a table). */
import t from 'tap';
import { covers, mayFollowJob, mayReadFile } from '../../src/bulk/access.js';
import type { ExportPlan } from '../../src/bulk/plan.js';
import type { TypeAccess, Visibility } from '../../src/fhir/visibility.js';

const all: TypeAccess = { kind: 'all' };
const none: TypeAccess = { kind: 'none' };
const vitals: [string, string] = ['category', 'vital-signs'];
const labs: [string, string] = ['category', 'laboratory'];
const final: [string, string] = ['status', 'final'];
const some = (searches: [string, string][][], patient?: string): TypeAccess => ({ kind: 'some', searches, ...(patient ? { patient } : {}) });

const table: [string, TypeAccess, TypeAccess, boolean][] = [
  ['all covers all', all, all, true],
  ['all covers granular', all, some([[vitals]]), true],
  ['none covers nothing planned', none, all, false],
  ['none does not cover granular', none, some([[vitals]]), false],
  ['granular does not cover all', some([[vitals]]), all, false],
  ['the same granular scope', some([[vitals]]), some([[vitals]]), true],
  ['a wider criterion covers a narrower', some([[vitals]]), some([[vitals, final]]), true],
  ['a narrower criterion does not cover a wider', some([[vitals, final]]), some([[vitals]]), false],
  ['another category does not cover', some([[labs]]), some([[vitals]]), false],
  ['one of two planned alternatives is not enough', some([[vitals]]), some([[vitals], [labs]]), false],
  ['two held alternatives cover one planned', some([[vitals], [labs]]), some([[labs]]), true],
  ['the same patient', some([], 'A'), some([], 'A'), true],
  ['another patient', some([], 'B'), some([], 'A'), false],
  ['a patient does not cover every patient', some([], 'A'), all, false],
  ['a patient does not cover a granular plan without a patient', some([], 'A'), some([[vitals]]), false],
  ['no patient, no criteria covers a patient plan', some([]), some([[vitals]], 'A'), true],
  ['the same patient with a wider criterion', some([[vitals]], 'A'), some([[vitals, final]], 'A'), true],
  ['the same patient without the criterion the plan had', some([[vitals]], 'A'), some([], 'A'), false],
];
for (const [name, held, planned, expected] of table) t.equal(covers(held, planned), expected, name);

const visibility = (access: Record<string, TypeAccess>): Visibility => ({ of: (type) => access[type] ?? none });
const plan = (level: ExportPlan['level'], types: Record<string, TypeAccess>): ExportPlan => ({
  level,
  types: Object.entries(types).map(([type, access]) => ({ type, access, filters: [] })),
  outputFormat: 'application/fhir+ndjson',
  ignored: [],
});

t.test('a file goes to a token as wide on its type; the job to one as wide on every type', async (t) => {
  const job = plan('system', { Patient: all, Observation: some([[vitals]]) });
  const patientOnly = visibility({ Patient: all });
  t.ok(mayReadFile(job, 'Patient', patientOnly));
  t.notOk(mayReadFile(job, 'Observation', patientOnly));
  t.notOk(mayFollowJob(job, patientOnly), 'the status URL needs every planned type');
  t.ok(mayFollowJob(job, visibility({ Patient: all, Observation: all })));
  t.notOk(mayReadFile(job, 'Condition', visibility({ Condition: all })), 'a type the job did not plan');
});

t.test('the level needs its own permission', async (t) => {
  t.notOk(mayFollowJob(plan('patient', { Observation: all }), visibility({ Observation: all })), 'Patient level: Patient search');
  t.ok(mayFollowJob(plan('patient', { Observation: all }), visibility({ Observation: all, Patient: all })));
  t.notOk(mayFollowJob(plan('group', { Observation: all }), visibility({ Observation: all })), 'Group level: Group read');
});
