-- Event positions and consumer groups: every stored event gets an increasing position (events already
-- stored are numbered in the order they occurred), and consumer groups keep how far they have read.

-- CreateTable
CREATE TABLE "event_consumer_group" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "name" TEXT NOT NULL,
    "position" BIGINT NOT NULL
);

-- RedefineTables
CREATE TABLE "new_events" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "occurred" DATETIME NOT NULL,
    "event" TEXT NOT NULL,
    "resource_id" TEXT NOT NULL,
    "resource" JSONB NOT NULL,
    "related_resource_ids" JSONB NOT NULL DEFAULT '[]',
    "related" JSONB NOT NULL DEFAULT '[]',
    "payload" JSONB NOT NULL,
    "received" DATETIME NOT NULL,
    "recorded" DATETIME NOT NULL,
    "follows" TEXT,
    "position" BIGINT NOT NULL
);
INSERT INTO "new_events" ("created", "event", "follows", "id", "occurred", "payload", "received", "recorded", "related", "related_resource_ids", "resource", "resource_id", "updated", "position")
SELECT "created", "event", "follows", "id", "occurred", "payload", "received", "recorded", "related", "related_resource_ids", "resource", "resource_id", "updated",
       row_number() OVER (ORDER BY "occurred", "id")
FROM "events";
DROP TABLE "events";
ALTER TABLE "new_events" RENAME TO "events";
CREATE INDEX "ix_events__occurred" ON "events"("occurred");
CREATE INDEX "ix_events__event__id" ON "events"("event", "id");
CREATE INDEX "ix_events__event_resource_id_occurred" ON "events"("event", "resource_id", "occurred");
CREATE INDEX "ix_events__occurred_id" ON "events"("occurred", "id");
CREATE INDEX "ix_events__event_occurred_id" ON "events"("event", "occurred", "id");
CREATE INDEX "ix_events__event_occurred" ON "events"("event", "occurred");
CREATE INDEX "ix_events__updated" ON "events"("updated");
CREATE UNIQUE INDEX "uq_events__position" ON "events"("position");

-- CreateIndex
CREATE UNIQUE INDEX "uq_event_consumer_group__name" ON "event_consumer_group"("name");
