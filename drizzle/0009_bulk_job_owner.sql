DROP INDEX "bulk_jobs_client_idx";--> statement-breakpoint
ALTER TABLE "bulk_jobs" ADD COLUMN "owner" text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX "bulk_jobs_owner_idx" ON "bulk_jobs" USING btree ("owner","status");