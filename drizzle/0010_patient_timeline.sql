CREATE TABLE "search_timeline" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"patient_id" text NOT NULL,
	"code" text NOT NULL,
	"systems" text[] NOT NULL,
	"start" timestamp (3) with time zone NOT NULL,
	"end" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
-- Hand-written: timeline rows for what is already stored, derived from its index rows as
-- src/fhir/search/indexer.ts (timelineRows) derives them at write time; before the btrees,
-- so they are built once rather than row by row.
WITH "about" AS (
  SELECT DISTINCT p."resource_type", p."resource_id", p."target_id" AS "patient_id",
         coalesce(d."start", '-infinity') AS "start", coalesce(d."end", '-infinity') AS "end"
  FROM "search_reference" p
  LEFT JOIN "search_date" d ON d."resource_type" = p."resource_type" AND d."resource_id" = p."resource_id" AND d."param" = 'date'
  WHERE p."resource_type" IN ('Observation', 'Procedure', 'DiagnosticReport') AND p."param" = 'subject' AND p."target_type" = 'Patient' AND p."target_id" IS NOT NULL
), "codes" AS (
  SELECT "resource_type", "resource_id", 'timeline:' || "param" AS "param", "code",
         array_agg(DISTINCT coalesce("system", '') COLLATE "C" ORDER BY coalesce("system", '') COLLATE "C") AS "systems"
  FROM "search_token"
  WHERE "resource_type" IN ('Observation', 'Procedure', 'DiagnosticReport') AND "param" IN ('code', 'category') AND "code" IS NOT NULL
  GROUP BY "resource_type", "resource_id", "param", "code"
)
INSERT INTO "search_timeline" ("resource_type", "resource_id", "param", "patient_id", "code", "systems", "start", "end")
SELECT a."resource_type", a."resource_id", 'timeline:any', a."patient_id", '', '{}', a."start", a."end" FROM "about" a
UNION ALL
SELECT a."resource_type", a."resource_id", c."param", a."patient_id", c."code", c."systems", a."start", a."end"
FROM "about" a JOIN "codes" c ON c."resource_type" = a."resource_type" AND c."resource_id" = a."resource_id";
--> statement-breakpoint
CREATE INDEX "search_timeline_key_idx" ON "search_timeline" USING btree ("resource_type","patient_id","param",left("code", 128),"start","resource_id");--> statement-breakpoint
CREATE INDEX "search_timeline_resource_idx" ON "search_timeline" USING btree ("resource_id");