import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

export type IssueCode = OperationOutcomeIssue['code'];
export type IssueSeverity = OperationOutcomeIssue['severity'];

export function issue(
  severity: IssueSeverity,
  code: IssueCode,
  text: string,
  expression?: string[],
): OperationOutcomeIssue {
  // R4 strings may not be empty: an issue without words is just its code.
  const out: OperationOutcomeIssue = text.trim() ? { severity, code, details: { text } } : { severity, code };
  if (expression?.length) out.expression = expression;
  return out;
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
