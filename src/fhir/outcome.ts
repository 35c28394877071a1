import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueCode = OperationOutcomeIssue['code'];
export type IssueSeverity = OperationOutcomeIssue['severity'];

export function issue(
  severity: IssueSeverity,
  code: IssueCode,
  text: string,
  expression?: string[],
): OperationOutcomeIssue {
  // R4 strings may not be empty, and allow no whitespace but space, tab, CR and LF (an
  // echoed header or parameter name may hold a no-break space or U+2028): an issue without words is just its code.
  const words = r4String(text);
  const out: OperationOutcomeIssue = words ? { severity, code, details: { text: words } } : { severity, code };
  const paths = (expression ?? []).map(r4String).filter((e) => e !== undefined);
  if (paths.length) out.expression = paths;
  return out;
}

/** `text` as a valid R4 string (other whitespace becomes a space), or undefined when nothing is left. */
function r4String(text: string): string | undefined {
  const clean = text.replace(/[^\S \t\r\n]/g, ' ');
  return clean.trim() ? clean : undefined;
}

export function outcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

/**
 * The one kind of error the engine throws: an HTTP status with the OperationOutcome
 * that explains it. Routes never build error bodies themselves; the error handler
 * renders this.
 */
export class FhirError extends Error {
  readonly status: number;
  readonly issues: OperationOutcomeIssue[];
  /** Extra response headers, e.g. Allow on a 405. */
  readonly headers: Record<string, string>;
  /** The resource at fault (`Procedure/123`), when the error is about one: lets a Bundle name its entry. */
  readonly subject?: string;

  constructor(status: number, issues: OperationOutcomeIssue[], headers: Record<string, string> = {}, subject?: string) {
    super(issues.map((i) => i.details?.text ?? i.code).join('; '));
    this.status = status;
    this.issues = issues;
    this.headers = headers;
    this.subject = subject;
  }

  get outcome(): OperationOutcome {
    return outcome(this.issues);
  }
}

const fail =
  (status: number, code: IssueCode) =>
  (text: string, expression?: string[]): FhirError =>
    new FhirError(status, [issue('error', code, text, expression)]);

export const badRequest = fail(400, 'invalid');
export const invalidStructure = fail(400, 'structure');
export const notFound = fail(404, 'not-found');
export const notSupported = fail(404, 'not-supported');
export const gone = fail(410, 'deleted');
export const conflict = fail(409, 'conflict');
export const preconditionFailed = fail(412, 'conflict');
export const unprocessable = fail(422, 'business-rule');
export const notAcceptable = fail(406, 'not-supported');
export const unsupportedMediaType = fail(415, 'not-supported');
export const tooLarge = fail(413, 'too-long');
/** The caller's token does not cover this (RFC 6750 insufficient_scope). */
export function forbidden(text: string, expression?: string[]): FhirError {
  return new FhirError(403, [issue('error', 'forbidden', text, expression)], { 'www-authenticate': 'Bearer realm="fascia", error="insufficient_scope"' });
}

export function methodNotAllowed(method: string, allowed: string[]): FhirError {
  return new FhirError(405, [issue('error', 'not-supported', `Method ${method} is not allowed here; allowed: ${allowed.join(', ')}`)], {
    allow: allowed.join(', '),
  });
}

/** A JSON pointer into a resource (`/name/0/given`) as FHIRPath (`Patient.name[0].given`). */
export function pointerToFhirPath(root: string, pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .reduce((path, p) => (/^\d+$/.test(p) ? `${path}[${p}]` : `${path}.${p}`), root);
}
