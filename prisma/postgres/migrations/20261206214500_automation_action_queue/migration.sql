-- CreateTable
CREATE TABLE "automation_action_queue" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "created" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "automation_id" UUID NOT NULL,
    "action_index" INTEGER NOT NULL,
    "triggered_action" JSONB NOT NULL,
    "available_at" TIMESTAMPTZ(6) NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "pk_automation_action_queue" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "ix_automation_action_queue__available_at" ON "automation_action_queue"("available_at");

-- CreateIndex
CREATE INDEX "ix_automation_action_queue__updated" ON "automation_action_queue"("updated");
