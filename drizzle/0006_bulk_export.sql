CREATE TABLE "bulk_chunks" (
	"job_id" text NOT NULL,
	"file_no" integer NOT NULL,
	"chunk_no" integer NOT NULL,
	"data" text NOT NULL,
	"written_by" text NOT NULL,
	CONSTRAINT "bulk_chunks_job_id_file_no_chunk_no_pk" PRIMARY KEY("job_id","file_no","chunk_no")
);
--> statement-breakpoint
CREATE TABLE "bulk_files" (
	"job_id" text NOT NULL,
	"file_no" integer NOT NULL,
	"kind" text NOT NULL,
	"resource_type" text NOT NULL,
	"count" integer DEFAULT 0 NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "bulk_files_job_id_file_no_pk" PRIMARY KEY("job_id","file_no")
);
--> statement-breakpoint
CREATE TABLE "bulk_jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"client_id" text NOT NULL,
	"status" text NOT NULL,
	"request" text NOT NULL,
	"plan" jsonb NOT NULL,
	"snapshot" timestamp (3) with time zone NOT NULL,
	"position" jsonb,
	"exported" integer DEFAULT 0 NOT NULL,
	"total" integer,
	"error" text,
	"worker_pid" integer,
	"worker_started" timestamp with time zone,
	"worker_name" text,
	"lease_until" timestamp (3) with time zone,
	"claims" integer DEFAULT 0 NOT NULL,
	"last_polled_at" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp (3) with time zone,
	"expires_at" timestamp (3) with time zone
);
--> statement-breakpoint
ALTER TABLE "bulk_chunks" ADD CONSTRAINT "bulk_chunks_job_id_file_no_bulk_files_job_id_file_no_fk" FOREIGN KEY ("job_id","file_no") REFERENCES "public"."bulk_files"("job_id","file_no") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "bulk_files" ADD CONSTRAINT "bulk_files_job_id_bulk_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."bulk_jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "bulk_jobs_work_idx" ON "bulk_jobs" USING btree ("status","created_at") WHERE "bulk_jobs"."status" IN ('queued', 'running');--> statement-breakpoint
CREATE INDEX "bulk_jobs_client_idx" ON "bulk_jobs" USING btree ("client_id","status");--> statement-breakpoint
CREATE INDEX "bulk_jobs_expires_idx" ON "bulk_jobs" USING btree ("expires_at");--> statement-breakpoint
-- By hand (drizzle-kit cannot say it): export chunks are large JSON text; lz4 compresses them
-- several times faster than the default pglz, where the server was built with it.
DO $$ BEGIN
  ALTER TABLE "bulk_chunks" ALTER COLUMN "data" SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
END $$;
