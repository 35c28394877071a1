-- The audit trail as an append-only log (issue 19): one narrow row per audited request,
-- served as R4 AuditEvent resources (src/audit/log.ts) instead of stored as versioned
-- resources with history and search index rows.
CREATE TABLE "audit_log" (
	"id" text PRIMARY KEY NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
	"recorded" timestamp (3) with time zone NOT NULL,
	"interaction" text NOT NULL,
	"status" smallint NOT NULL,
	"client_id" text,
	"issuer" text,
	"subject" text,
	"patient" text,
	"address" text NOT NULL,
	"entities" text[] DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE INDEX "audit_log_recorded_idx" ON "audit_log" USING btree ("recorded","seq");
--> statement-breakpoint
CREATE INDEX "audit_log_patient_idx" ON "audit_log" USING btree ("patient","recorded") WHERE "patient" IS NOT NULL;
--> statement-breakpoint
CREATE INDEX "audit_log_entities_idx" ON "audit_log" USING gin ("entities");
--> statement-breakpoint
-- A log row as the R4 AuditEvent it stands for: the one place that shape is written.
CREATE FUNCTION audit_event_json(a audit_log) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT json_strip_nulls(json_build_object(
    'resourceType', 'AuditEvent',
    'id', a.id,
    'meta', json_build_object('versionId', '1', 'lastUpdated', to_char(a.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
    'type', json_build_object('system', 'http://terminology.hl7.org/CodeSystem/audit-event-type', 'code', 'rest', 'display', 'RESTful Operation'),
    'subtype', json_build_array(json_build_object('system', 'http://hl7.org/fhir/restful-interaction', 'code', a.interaction)),
    'action', CASE a.interaction WHEN 'create' THEN 'C' WHEN 'update' THEN 'U' WHEN 'patch' THEN 'U' WHEN 'delete' THEN 'D'
      WHEN 'transaction' THEN 'E' WHEN 'batch' THEN 'E' WHEN 'operation' THEN 'E' ELSE 'R' END,
    'recorded', to_char(a.recorded AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'outcome', CASE WHEN a.status >= 500 THEN '8' WHEN a.status >= 400 THEN '4' ELSE '0' END,
    'outcomeDesc', CASE WHEN a.status >= 400 THEN 'HTTP ' || a.status END,
    'agent', CASE WHEN a.patient IS NULL THEN json_build_array(c.agent) ELSE json_build_array(c.agent, p.agent) END,
    'source', json_build_object('observer', json_build_object('display', 'Fascia'),
      'type', json_build_array(json_build_object('system', 'http://terminology.hl7.org/CodeSystem/security-source-type', 'code', '4', 'display', 'Application Server'))),
    'entity', (SELECT json_agg(CASE WHEN e LIKE '%/%' THEN json_build_object('what', json_build_object('reference', e))
                                    ELSE json_build_object('what', json_build_object('type', e)) END ORDER BY n)
               FROM unnest(a.entities) WITH ORDINALITY u(e, n))
  ))::text
  FROM (SELECT json_build_object(
          'who', CASE WHEN a.client_id IS NOT NULL
                   THEN json_build_object('identifier', json_build_object('system', a.issuer, 'value', a.client_id), 'display', a.client_id)
                   ELSE json_build_object('display', 'unauthenticated client') END,
          'altId', a.subject,
          'requestor', true,
          'network', json_build_object('address', a.address, 'type', '2')) AS agent) c,
       (SELECT json_build_object('who', json_build_object('reference', 'Patient/' || a.patient), 'requestor', false,
          'role', json_build_array(json_build_object('text', 'patient in the token''s context'))) AS agent) p
$$;
--> statement-breakpoint
-- The AuditEvents stored as resources before this migration, moved into the log.
INSERT INTO "audit_log" ("id", "recorded", "interaction", "status", "client_id", "issuer", "subject", "patient", "address", "entities")
SELECT r.id,
  coalesce((j.c->>'recorded')::timestamptz, r.last_updated),
  coalesce(j.c->'subtype'->0->>'code', 'read'),
  CASE WHEN j.c->>'outcomeDesc' ~ '^HTTP [0-9]{3}$' THEN substr(j.c->>'outcomeDesc', 6)::smallint
       WHEN j.c->>'outcome' = '8' THEN 500 WHEN j.c->>'outcome' = '4' THEN 400 ELSE 200 END,
  j.c->'agent'->0->'who'->'identifier'->>'value',
  j.c->'agent'->0->'who'->'identifier'->>'system',
  j.c->'agent'->0->>'altId',
  (SELECT substr(ag->'who'->>'reference', 9) FROM jsonb_array_elements(coalesce(j.c->'agent', '[]')) ag
     WHERE ag->'who'->>'reference' LIKE 'Patient/%' LIMIT 1),
  coalesce(j.c->'agent'->0->'network'->>'address', ''),
  coalesce((SELECT array_agg(coalesce(e->'what'->>'reference', e->'what'->>'type') ORDER BY n)
     FROM jsonb_array_elements(coalesce(j.c->'entity', '[]')) WITH ORDINALITY x(e, n)
     WHERE coalesce(e->'what'->>'reference', e->'what'->>'type') IS NOT NULL), '{}')
FROM "resources" r CROSS JOIN LATERAL (SELECT r.content::jsonb AS c) j
WHERE r.resource_type = 'AuditEvent' AND NOT r.deleted AND r.content IS NOT NULL
ORDER BY coalesce((j.c->>'recorded')::timestamptz, r.last_updated);
--> statement-breakpoint
DELETE FROM "subscription_outbox" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_token" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_string" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_date" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_reference" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_number" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_uri" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_composite" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "search_text" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "resource_history" WHERE resource_type = 'AuditEvent';
--> statement-breakpoint
DELETE FROM "resources" WHERE resource_type = 'AuditEvent';
