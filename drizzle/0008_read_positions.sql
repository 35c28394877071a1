-- UNLOGGED by hand (drizzle-kit has no such option): a routing hint written after each write, no WAL flush.
CREATE UNLOGGED TABLE "read_positions" (
	"client" text PRIMARY KEY NOT NULL,
	"lsn" text NOT NULL,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
