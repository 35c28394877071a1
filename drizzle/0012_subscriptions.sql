CREATE TABLE "subscription_events" (
	"subscription_id" text NOT NULL,
	"event_number" bigint NOT NULL,
	"seq" bigint NOT NULL,
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"version_id" integer NOT NULL,
	"interaction" text NOT NULL,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "subscription_events_subscription_id_event_number_pk" PRIMARY KEY("subscription_id","event_number")
);
--> statement-breakpoint
CREATE TABLE "subscription_outbox" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"version_id" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "subscriptions" (
	"id" text PRIMARY KEY NOT NULL,
	"owner" text NOT NULL,
	"owner_scope" text,
	"owner_patient" text,
	"status" text NOT NULL,
	"version_id" integer NOT NULL,
	"resource_type" text NOT NULL,
	"criteria" text DEFAULT '' NOT NULL,
	"topic" text,
	"triggers" text[] NOT NULL,
	"channel" text NOT NULL,
	"endpoint" text,
	"headers" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"payload" text,
	"content" text NOT NULL,
	"heartbeat_seconds" integer,
	"max_count" integer,
	"events_since_start" bigint DEFAULT 0 NOT NULL,
	"delivered_through" bigint DEFAULT 0 NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"failing_since" timestamp (3) with time zone,
	"last_sent_at" timestamp (3) with time zone,
	"started_at" timestamp (3) with time zone,
	"error" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "subscription_events" ADD CONSTRAINT "subscription_events_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "public"."subscriptions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "subscription_events_at_idx" ON "subscription_events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "subscriptions_type_idx" ON "subscriptions" USING btree ("resource_type") WHERE status <> 'off';--> statement-breakpoint
CREATE INDEX "subscriptions_due_idx" ON "subscriptions" USING btree ("next_attempt_at") WHERE status IN ('requested', 'active');