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
CREATE UNIQUE INDEX "resource_history_version_idx" ON "resource_history" USING btree ("resource_type","id","version_id");--> statement-breakpoint
CREATE INDEX "resource_history_type_seq_idx" ON "resource_history" USING btree ("resource_type","seq");--> statement-breakpoint
CREATE INDEX "resource_history_last_updated_idx" ON "resource_history" USING btree ("last_updated");--> statement-breakpoint
CREATE INDEX "resources_type_last_updated_idx" ON "resources" USING btree ("resource_type","last_updated");