-- Event positions and consumer groups: every stored event gets an increasing position (events already
-- stored are numbered in the order they occurred), and consumer groups keep how far they have read.

-- AlterTable
ALTER TABLE "events" ADD COLUMN "position" BIGINT;
UPDATE "events" SET "position" = numbered.n
FROM (SELECT "id", row_number() OVER (ORDER BY "occurred", "id") AS n FROM "events") AS numbered
WHERE "events"."id" = numbered."id";
ALTER TABLE "events" ALTER COLUMN "position" SET NOT NULL;

-- CreateTable
CREATE TABLE "event_consumer_group" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "name" TEXT NOT NULL,
    "position" BIGINT NOT NULL,

    CONSTRAINT "pk_event_consumer_group" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "uq_event_consumer_group__name" ON "event_consumer_group"("name");

-- CreateIndex
CREATE UNIQUE INDEX "uq_events__position" ON "events"("position");
