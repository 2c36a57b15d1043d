-- CreateTable
CREATE TABLE "automation_action_queue" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "created" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "updated" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    "automation_id" TEXT NOT NULL,
    "action_index" INTEGER NOT NULL,
    "triggered_action" JSONB NOT NULL,
    "available_at" DATETIME NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0
);

-- CreateIndex
CREATE INDEX "ix_automation_action_queue__available_at" ON "automation_action_queue"("available_at");

-- CreateIndex
CREATE INDEX "ix_automation_action_queue__updated" ON "automation_action_queue"("updated");
