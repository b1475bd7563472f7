CREATE TABLE "peers" (
	"id" text PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"flavour" text DEFAULT 'memfed' NOT NULL,
	"public_key" "bytea",
	"state" text DEFAULT 'active' NOT NULL,
	"source" text DEFAULT 'operator' NOT NULL,
	"created_at" timestamp(6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp(6) with time zone DEFAULT now() NOT NULL
);
