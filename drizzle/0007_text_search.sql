CREATE TABLE "search_text" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"vector" "tsvector" NOT NULL
);
--> statement-breakpoint
CREATE INDEX "search_text_vector_idx" ON "search_text" USING gin ("vector");--> statement-breakpoint
CREATE INDEX "search_text_resource_idx" ON "search_text" USING btree ("resource_id","param");--> statement-breakpoint
-- Hand-written (drizzle has no data migrations): the backfill of _text and _content for
-- resources written before this migration. It folds and strips as src/fhir/search/text.ts
-- does (tags to spaces, the common entities, accents U+0300-U+036F, lower case); the
-- order of _content's values follows jsonb rather than the document, which matters only
-- to a phrase that spans two values. Bundle, Binary and Parameters have no narrative (_text is a DomainResource parameter).
INSERT INTO "search_text" ("resource_type", "resource_id", "param", "vector")
SELECT r.resource_type, r.id, d.param, to_tsvector('simple', d.doc)
FROM "resources" r
CROSS JOIN LATERAL (SELECT r.content::jsonb AS j) c
CROSS JOIN LATERAL (
  SELECT replace(replace(replace(replace(replace(replace(
           regexp_replace(c.j #>> '{text,div}', '<[^>]*>', ' ', 'g'),
           '&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&apos;', ''''), '&nbsp;', ' '), '&amp;', '&') AS narrative
) n
CROSS JOIN LATERAL (
  SELECT '_text' AS param, n.narrative AS raw
  WHERE n.narrative IS NOT NULL AND r.resource_type NOT IN ('Bundle', 'Binary', 'Parameters')
  UNION ALL
  SELECT '_content', concat_ws(E'\n', n.narrative, (
    SELECT string_agg(v #>> '{}', E'\n')
    FROM jsonb_path_query(c.j - 'id' - 'resourceType' #- '{meta,versionId}' #- '{meta,lastUpdated}' #- '{text,div}', 'strict $.**') v
    WHERE jsonb_typeof(v) = 'string' AND v <> '""'
  ))
) t
CROSS JOIN LATERAL (SELECT t.param, lower(regexp_replace(normalize(trim(t.raw), NFD), '[\u0300-\u036f]', '', 'g')) AS doc) d
WHERE NOT r.deleted AND r.content IS NOT NULL AND d.doc <> '';
