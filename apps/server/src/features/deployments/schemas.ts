/** The bodies of the deployment routes, validated as Prefect's DeploymentCreate / DeploymentUpdate and schedules. */
import { z } from "zod";
import * as api from "../../generated/prefect-api.js";
import { NormalizedScheduleSchema } from "../schedules/definitions.js";

/** PREFECT_SERVER_DEPLOYMENT_SCHEDULE_MAX_SCHEDULED_RUNS's default. */
const MAX_SCHEDULED_RUNS = 50;

const MaxScheduledRuns = z
  .number()
  .int()
  .gt(0)
  .nullable()
  .optional()
  .refine((v) => v === null || v === undefined || v <= MAX_SCHEDULED_RUNS, {
    message: `Value error, \`max_scheduled_runs\` must be less than or equal to ${MAX_SCHEDULED_RUNS}.`,
  });

/** A schedule definition, validated (bad cron, rrule or timezone: 422) and normalized as Prefect does. */
export const ScheduleCreateBody = api.DeploymentScheduleCreate.extend({ schedule: NormalizedScheduleSchema, max_scheduled_runs: MaxScheduledRuns });
export const ScheduleUpdateBody = api.DeploymentScheduleUpdate.extend({ schedule: NormalizedScheduleSchema.nullable().optional(), max_scheduled_runs: MaxScheduledRuns });

/** Fields older clients send, which Prefect drops before validating (`remove_old_deployment_fields`). */
const OLD_FIELDS = ["worker_pool_queue_id", "worker_pool_name", "worker_pool_queue_name", "work_pool_queue_name"];
const withoutOldFields = (body: unknown) =>
  typeof body === "object" && body !== null && !Array.isArray(body) ? Object.fromEntries(Object.entries(body).filter(([k]) => !OLD_FIELDS.includes(k))) : body;

const bothLimits = (b: { concurrency_limit?: number | null | undefined; global_concurrency_limit_id?: string | null | undefined }) =>
  !(b.concurrency_limit && b.global_concurrency_limit_id);
const BOTH_LIMITS = { message: "Value error, A deployment cannot have both a concurrency limit and a global concurrency limit." };

export const DeploymentCreateBody = z.preprocess(
  withoutOldFields,
  api.DeploymentCreate.extend({ schedules: z.array(ScheduleCreateBody).optional() }).refine(bothLimits, BOTH_LIMITS),
);
export const DeploymentUpdateBody = z.preprocess(
  withoutOldFields,
  api.DeploymentUpdate.extend({ schedules: z.array(ScheduleUpdateBody).optional() }).refine(bothLimits, BOTH_LIMITS),
);

export type DeploymentCreateInput = z.output<typeof DeploymentCreateBody>;
export type DeploymentUpdateInput = z.output<typeof DeploymentUpdateBody>;
