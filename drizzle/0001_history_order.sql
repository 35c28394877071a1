DROP INDEX "resource_history_type_seq_idx";--> statement-breakpoint
DROP INDEX "resource_history_last_updated_idx";--> statement-breakpoint
CREATE INDEX "resource_history_type_time_idx" ON "resource_history" USING btree ("resource_type","last_updated","seq");--> statement-breakpoint
CREATE INDEX "resource_history_time_idx" ON "resource_history" USING btree ("last_updated","seq");--> statement-breakpoint
ALTER TABLE "resource_history" DROP COLUMN "txid";