-- Concurrency leases in the database, shared by every server (they lived in one server's memory).

-- CreateTable
CREATE TABLE "concurrency_lease" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "resource_ids" JSONB NOT NULL DEFAULT '[]',
    "expiration" DATETIME NOT NULL,
    "slots" INTEGER,
    "holder_type" TEXT,
    "holder_id" TEXT
);

-- CreateIndex
CREATE INDEX "ix_concurrency_lease__expiration" ON "concurrency_lease"("expiration");

-- CreateIndex
CREATE INDEX "ix_concurrency_lease__holder_id" ON "concurrency_lease"("holder_id");
