/**
 * Artifacts and the latest artifact of each key (Prefect's artifact collections). Changes to a
 * collection publish Prefect's `prefect.artifact-collection.*` lifecycle events once committed.
 */
import {
  type Artifact,
  type ArtifactCollection,
  type ArtifactCollectionCriteria,
  type ArtifactCollectionReadOptions,
  type ArtifactCreate,
  type ArtifactCriteria,
  type ArtifactReadOptions,
  type ArtifactUpdate,
  NotFoundError,
  type Repositories,
} from "@prefect/db";
import type { AppContext } from "../../context.js";
import { notFound } from "../../prefect/errors.js";
import { publishEvents } from "../events/bus.js";
import { lifecycleEvent } from "../events/lifecycle.js";

const NOT_FOUND = "Artifact not found.";

type Context = Pick<AppContext, "db" | "events">;

/** Prefect's event for a collection: the latest artifact and its runs are the related resources. */
function publish({ events }: Context, action: "created" | "updated" | "deleted", collection: ArtifactCollection): void {
  const related: Record<string, string>[] = [{ "prefect.resource.id": `prefect.artifact.${collection.latest_id}`, "prefect.resource.role": "latest" }];
  if (collection.flow_run_id) related.push({ "prefect.resource.id": `prefect.flow-run.${collection.flow_run_id}`, "prefect.resource.role": "flow-run" });
  if (collection.task_run_id) related.push({ "prefect.resource.id": `prefect.task-run.${collection.task_run_id}`, "prefect.resource.role": "task-run" });
  publishEvents(events, [
    lifecycleEvent({
      kind: "artifact-collection",
      action,
      resourceId: `prefect.artifact-collection.${collection.id}`,
      resourceName: collection.key,
      payload: { key: collection.key, type: collection.type, data: collection.data ?? null, description: collection.description },
      related,
    }),
  ]);
}

export async function createArtifact(context: Context, input: ArtifactCreate): Promise<Artifact> {
  const { artifact, collection } = await context.db.transaction(async (tx) => {
    const artifact = await tx.artifacts.create(input);
    const collection = artifact.key === null ? null : await tx.artifacts.getLatest(artifact.key);
    return { artifact, collection };
  });
  if (collection && collection.latest_id === artifact.id) publish(context, collection.created === collection.updated ? "created" : "updated", collection);
  return artifact;
}

export async function readArtifact(db: Repositories, id: string): Promise<Artifact> {
  const artifact = await db.artifacts.get(id);
  if (!artifact) throw notFound(NOT_FOUND);
  return artifact;
}

export async function readLatestArtifact(db: Repositories, key: string): Promise<ArtifactCollection> {
  const collection = await db.artifacts.getLatest(key);
  if (!collection) throw notFound(NOT_FOUND);
  return collection;
}

export const readArtifacts = (db: Repositories, options: ArtifactReadOptions) => db.artifacts.read(options);
export const readLatestArtifacts = (db: Repositories, options: ArtifactCollectionReadOptions) => db.artifacts.readLatest(options);
export const countArtifacts = (db: Repositories, criteria: ArtifactCriteria) => db.artifacts.count(criteria);
export const countLatestArtifacts = (db: Repositories, criteria: ArtifactCollectionCriteria) => db.artifacts.countLatest(criteria);

export async function updateArtifact(db: Repositories, id: string, update: ArtifactUpdate): Promise<void> {
  try {
    await db.artifacts.update(id, update);
  } catch (error) {
    if (error instanceof NotFoundError) throw notFound(NOT_FOUND);
    throw error;
  }
}

/** Deletes the artifact; when it was its key's latest, the collection moves to the one before (or goes). */
export async function deleteArtifact(context: Context, id: string): Promise<void> {
  const change = await context.db.transaction(async (tx) => {
    const artifact = await tx.artifacts.get(id);
    if (!artifact) throw notFound(NOT_FOUND);
    const before = artifact.key === null ? null : await tx.artifacts.getLatest(artifact.key);
    await tx.artifacts.delete(artifact.id);
    if (!before || before.latest_id !== artifact.id) return null;
    const after = await tx.artifacts.getLatest(before.key);
    return after ? { action: "updated" as const, collection: after } : { action: "deleted" as const, collection: before };
  });
  if (change) publish(context, change.action, change.collection);
}
