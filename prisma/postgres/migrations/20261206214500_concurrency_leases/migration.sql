-- Concurrency leases in the database, shared by every server (they lived in one server's memory).

-- CreateTable
CREATE TABLE "concurrency_lease" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "resource_ids" JSONB NOT NULL DEFAULT '[]',
    "expiration" TIMESTAMPTZ(6) NOT NULL,
    "slots" INTEGER,
    "holder_type" TEXT,
    "holder_id" UUID,

    CONSTRAINT "pk_concurrency_lease" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "ix_concurrency_lease__expiration" ON "concurrency_lease"("expiration");

-- CreateIndex
CREATE INDEX "ix_concurrency_lease__holder_id" ON "concurrency_lease"("holder_id");
