DROP INDEX "search_composite_value_idx";--> statement-breakpoint
DROP INDEX "search_string_value_idx";--> statement-breakpoint
DROP INDEX "search_token_value_idx";--> statement-breakpoint
DROP INDEX "search_uri_value_idx";--> statement-breakpoint
CREATE INDEX "search_reference_url_idx" ON "search_reference" USING btree ("resource_type","param",left("url", 128)) WHERE "search_reference"."url" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "search_composite_value_idx" ON "search_composite" USING btree ("resource_type","param",left("code", 128),left("system", 128));--> statement-breakpoint
CREATE INDEX "search_string_value_idx" ON "search_string" USING btree ("resource_type","param",left("norm", 128) text_pattern_ops);--> statement-breakpoint
CREATE INDEX "search_token_value_idx" ON "search_token" USING btree ("resource_type","param",left("code", 128),left("system", 128));--> statement-breakpoint
CREATE INDEX "search_uri_value_idx" ON "search_uri" USING btree ("resource_type","param",left("value", 128) text_pattern_ops);--> statement-breakpoint
-- Hand-written: a type name longer than 64 letters names no local target any more (src/fhir/search/indexer.ts); such rows get the url form new writes store.
UPDATE "search_reference" SET "url" = "target_type" || '/' || "target_id", "target_type" = NULL, "target_id" = NULL WHERE length("target_type") > 64;
