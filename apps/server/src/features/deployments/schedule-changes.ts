/**
 * How `PATCH /deployments/{id}` applies the schedules it is given (Prefect's `update_deployment`):
 * by slug when every schedule has one, else replacing them all.
 */
import type { DeploymentSchedule, DeploymentScheduleCreate, Repositories } from "@prefect/db";
import { notFound, unprocessable } from "../../prefect/errors.js";

type Json = Record<string, unknown>;

export interface ScheduleChange {
  readonly active?: boolean | null | undefined;
  readonly schedule?: DeploymentSchedule["schedule"] | null | undefined;
  readonly max_scheduled_runs?: number | null | undefined;
  readonly parameters?: Json | undefined;
  readonly slug?: string | null | undefined;
  readonly replaces?: string | null | undefined;
}

export interface SchedulePlan {
  /** Replace every schedule with these (Prefect's fallback when slugs cannot be matched). */
  readonly replaceAll: ScheduleChange[] | undefined;
  /** Update the schedule with the slug `replaces ?? slug`. */
  readonly patches: ScheduleChange[];
  /** Add these. */
  readonly creates: ScheduleChange[];
}

/**
 * How Prefect's update applies `schedules`: when every existing schedule and every given one has a
 * slug, the given ones update the schedules with their slug (or the slug they replace) and the
 * others are added, leaving unmentioned schedules alone; when the existing ones have slugs and a
 * given one does not, 422; otherwise, when schedules are given, they replace all of them.
 */
export function planSchedules(existing: readonly DeploymentSchedule[], given: readonly ScheduleChange[] | undefined): SchedulePlan {
  const provided = given ?? [];
  const allProvidedHaveSlugs = provided.every((s) => s.slug !== null && s.slug !== undefined);
  const allExistingHaveSlugs = existing.length > 0 && existing.every((s) => s.slug !== null);
  if (allProvidedHaveSlugs && allExistingHaveSlugs) {
    const current = new Set(existing.map((s) => s.slug));
    const replaced = new Set<string>();
    for (const schedule of provided) {
      if (!schedule.replaces) continue;
      if (replaced.has(schedule.replaces)) throw unprocessable(`Multiple schedules have 'replaces' targeting the same slug: ${schedule.replaces}`, ["schedules"]);
      replaced.add(schedule.replaces);
    }
    for (const schedule of provided) {
      if (schedule.slug && current.has(schedule.slug) && !replaced.has(schedule.slug) && schedule.replaces) {
        throw unprocessable(
          `Cannot rename schedule from '${schedule.replaces}' to '${schedule.slug}': a schedule with slug '${schedule.slug}' already exists.`,
          ["schedules"],
        );
      }
    }
    const patches: ScheduleChange[] = [];
    const creates: ScheduleChange[] = [];
    for (const schedule of provided) {
      const target = schedule.replaces ? schedule.replaces : schedule.slug;
      if (target && current.has(target)) patches.push(schedule);
      else if (schedule.schedule) creates.push(schedule);
      else throw unprocessable("Unable to create new deployment schedules without a schedule configuration.", ["schedules"]);
    }
    return { replaceAll: undefined, patches, creates };
  }
  if (!allProvidedHaveSlugs && allExistingHaveSlugs) {
    throw unprocessable("Please provide a slug for each schedule in your request to ensure schedules are updated correctly.", ["schedules"]);
  }
  return { replaceAll: given === undefined ? undefined : [...given], patches: [], creates: [] };
}

/**
 * What Prefect writes when it updates a schedule from a change: the values given that are not null,
 * `parameters` always (an empty object when not given), never `replaces`.
 */
export function scheduleUpdateValues(change: ScheduleChange) {
  return {
    parameters: change.parameters ?? {},
    ...(change.active !== null && change.active !== undefined ? { active: change.active } : {}),
    ...(change.schedule ? { schedule: change.schedule } : {}),
    ...(change.max_scheduled_runs !== null && change.max_scheduled_runs !== undefined ? { max_scheduled_runs: change.max_scheduled_runs } : {}),
    ...(change.slug !== null && change.slug !== undefined ? { slug: change.slug } : {}),
  };
}

/** Prefect skips schedules without a definition when an update replaces all of them. */
export const hasDefinition = (change: ScheduleChange) => Boolean(change.schedule);

/** A schedule change that carries a definition (Prefect skips the others when replacing all). */
export function scheduleCreateOf(change: ScheduleChange): DeploymentScheduleCreate {
  if (!change.schedule) throw new Error("a schedule without a definition cannot be created");
  return {
    schedule: change.schedule,
    active: change.active ?? true,
    max_scheduled_runs: change.max_scheduled_runs ?? null,
    parameters: change.parameters ?? {},
    slug: change.slug ?? null,
  };
}

/**
 * Applies the targeted schedule changes of an update: renames first (slugs being replaced are
 * cleared so the renamed schedules cannot collide), then updates by id or slug, then additions.
 */
export async function applyScheduleChanges(tx: Repositories, deploymentId: string, patches: readonly ScheduleChange[], creates: readonly ScheduleChange[]): Promise<void> {
  const current = await tx.deployments.readSchedules(deploymentId);
  const idBySlug = new Map(current.filter((s) => s.slug !== null).map((s) => [s.slug as string, s.id]));
  const renamed = new Map<string, string>();
  for (const patch of patches) {
    if (!patch.replaces) continue;
    const id = idBySlug.get(patch.replaces);
    if (!id) throw notFound(`Schedule with slug '${patch.replaces}' no longer exists.`);
    renamed.set(patch.replaces, id);
  }
  for (const id of renamed.values()) await tx.deployments.updateSchedule(deploymentId, id, { slug: null });
  for (const patch of patches) {
    const id = patch.replaces ? renamed.get(patch.replaces) : patch.slug ? idBySlug.get(patch.slug) : undefined;
    if (id) await tx.deployments.updateSchedule(deploymentId, id, scheduleUpdateValues(patch));
  }
  if (creates.length > 0) await tx.deployments.createSchedules(deploymentId, creates.map(scheduleCreateOf));
}
