CREATE TABLE "resource_history" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	"resource_type" text NOT NULL,
	"id" text NOT NULL,
	"version_id" integer NOT NULL,
	"last_updated" timestamp (3) with time zone NOT NULL,
	"method" text NOT NULL,
	"content" text
);
--> statement-breakpoint
CREATE TABLE "resources" (
	"resource_type" text NOT NULL,
	"id" text NOT NULL,
	"version_id" integer NOT NULL,
	"last_updated" timestamp (3) with time zone NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"content" text,
	CONSTRAINT "resources_resource_type_id_pk" PRIMARY KEY("resource_type","id")
);
--> statement-breakpoint
CREATE TABLE "search_composite" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"system" text,
	"code" text,
	"num" numeric,
	"value_system" text,
	"value_code" text,
	"start" timestamp (3) with time zone,
	"end" timestamp (3) with time zone,
	"str" text
);
--> statement-breakpoint
CREATE TABLE "search_date" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"start" timestamp (3) with time zone NOT NULL,
	"end" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "search_number" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"value" numeric NOT NULL,
	"system" text,
	"code" text
);
--> statement-breakpoint
CREATE TABLE "search_reference" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"target_type" text,
	"target_id" text,
	"url" text
);
--> statement-breakpoint
CREATE TABLE "search_string" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"norm" text NOT NULL,
	"raw" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "search_token" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"system" text,
	"code" text,
	"text" text
);
--> statement-breakpoint
CREATE TABLE "search_uri" (
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"param" text NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "resource_history_version_idx" ON "resource_history" USING btree ("resource_type","id","version_id");--> statement-breakpoint
CREATE INDEX "resource_history_type_seq_idx" ON "resource_history" USING btree ("resource_type","seq");--> statement-breakpoint
CREATE INDEX "resource_history_last_updated_idx" ON "resource_history" USING btree ("last_updated");--> statement-breakpoint
CREATE INDEX "resources_type_last_updated_idx" ON "resources" USING btree ("resource_type","last_updated","id") WHERE NOT "resources"."deleted";--> statement-breakpoint
CREATE INDEX "search_composite_value_idx" ON "search_composite" USING btree ("resource_type","param","code","system");--> statement-breakpoint
CREATE INDEX "search_composite_resource_idx" ON "search_composite" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_date_value_idx" ON "search_date" USING btree ("resource_type","param","start");--> statement-breakpoint
CREATE INDEX "search_date_resource_idx" ON "search_date" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_number_value_idx" ON "search_number" USING btree ("resource_type","param","value");--> statement-breakpoint
CREATE INDEX "search_number_resource_idx" ON "search_number" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_reference_target_idx" ON "search_reference" USING btree ("resource_type","param","target_id","target_type");--> statement-breakpoint
CREATE INDEX "search_reference_resource_idx" ON "search_reference" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_reference_reverse_idx" ON "search_reference" USING btree ("target_type","target_id");--> statement-breakpoint
CREATE INDEX "search_string_value_idx" ON "search_string" USING btree ("resource_type","param","norm" text_pattern_ops);--> statement-breakpoint
CREATE INDEX "search_string_resource_idx" ON "search_string" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_token_value_idx" ON "search_token" USING btree ("resource_type","param","code","system");--> statement-breakpoint
CREATE INDEX "search_token_resource_idx" ON "search_token" USING btree ("resource_id","param");--> statement-breakpoint
CREATE INDEX "search_uri_value_idx" ON "search_uri" USING btree ("resource_type","param","value");--> statement-breakpoint
CREATE INDEX "search_uri_resource_idx" ON "search_uri" USING btree ("resource_id","param");