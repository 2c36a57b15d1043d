/**
 * Artifacts: create, read, filter, count, update and delete, and the latest artifact of each key
 * (Prefect's artifact collections): read by key, filter and count. Changes to a collection publish
 * Prefect's `prefect.artifact-collection.*` lifecycle events.
 */
import {
  type Artifact,
  type ArtifactCollection,
  type ArtifactCollectionCriteria,
  type ArtifactCriteria,
  NotFoundError,
} from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../app.js";
import { publishLifecycleEvent } from "../events/lifecycle.js";
import * as api from "../generated/prefect-api.js";
import { HttpError } from "../http/errors.js";
import type { Routes } from "../http/zod.js";
import { IdParams, limitOf } from "./common.js";
import { UUID_ID, valueError } from "./fields.js";

const NOT_FOUND = "Artifact not found.";

/** Prefect's ArtifactKey. */
const ArtifactKey = z.string().regex(/^[a-z0-9-]*$/, { message: valueError("Artifact key must only contain lowercase letters, numbers, and dashes.") });

const ArtifactCreateBody = api.ArtifactCreate.extend({ key: ArtifactKey.nullable().optional() });

export function artifactResponse(artifact: Artifact) {
  return {
    id: artifact.id,
    created: artifact.created,
    updated: artifact.updated,
    key: artifact.key,
    type: artifact.type,
    description: artifact.description,
    data: artifact.data ?? null,
    metadata_: artifact.metadata_,
    flow_run_id: artifact.flow_run_id,
    task_run_id: artifact.task_run_id,
  };
}

export function artifactCollectionResponse(collection: ArtifactCollection) {
  return {
    id: collection.id,
    created: collection.created,
    updated: collection.updated,
    key: collection.key,
    latest_id: collection.latest_id,
    type: collection.type,
    description: collection.description,
    data: collection.data ?? null,
    metadata_: collection.metadata_,
    flow_run_id: collection.flow_run_id,
    task_run_id: collection.task_run_id,
  };
}

interface RelatedBody {
  readonly flow_runs?: unknown;
  readonly task_runs?: unknown;
  readonly flows?: unknown;
  readonly deployments?: unknown;
}

/** The run, flow and deployment criteria of a read body, for the repository (which validates them again). */
function related(body: RelatedBody) {
  return {
    flow_runs: (body.flow_runs ?? null) as ArtifactCriteria["flow_runs"],
    task_runs: (body.task_runs ?? null) as ArtifactCriteria["task_runs"],
    flows: (body.flows ?? null) as ArtifactCriteria["flows"],
    deployments: (body.deployments ?? null) as ArtifactCriteria["deployments"],
  };
}

export function artifactRoutes({ db, events }: AppContext): Routes {
  /** Prefect's event for a collection: the latest artifact and its runs are the related resources. */
  const publish = (action: "created" | "updated" | "deleted", collection: ArtifactCollection) => {
    const relatedResources: Record<string, string>[] = [{ "prefect.resource.id": `prefect.artifact.${collection.latest_id}`, "prefect.resource.role": "latest" }];
    if (collection.flow_run_id) relatedResources.push({ "prefect.resource.id": `prefect.flow-run.${collection.flow_run_id}`, "prefect.resource.role": "flow-run" });
    if (collection.task_run_id) relatedResources.push({ "prefect.resource.id": `prefect.task-run.${collection.task_run_id}`, "prefect.resource.role": "task-run" });
    publishLifecycleEvent(events, {
      kind: "artifact-collection",
      action,
      resourceId: `prefect.artifact-collection.${collection.id}`,
      resourceName: collection.key,
      payload: { key: collection.key, type: collection.type, data: collection.data ?? null, description: collection.description },
      related: relatedResources,
    });
  };

  return async (app) => {
    app.post("/artifacts/", { schema: { body: ArtifactCreateBody } }, async (request, reply) => {
      const { artifact, collection } = await db.transaction(async (tx) => {
        const artifact = await tx.artifacts.create(request.body);
        const collection = artifact.key === null ? null : await tx.artifacts.getLatest(artifact.key);
        return { artifact, collection };
      });
      if (collection && collection.latest_id === artifact.id) publish(collection.created === collection.updated ? "created" : "updated", collection);
      return reply.code(201).send(artifactResponse(artifact));
    });

    app.get(`/artifacts/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      const artifact = await db.artifacts.get(request.params.id);
      if (!artifact) throw new HttpError(404, NOT_FOUND);
      return artifactResponse(artifact);
    });

    // As in Prefect, the collection is shown as an artifact: its own id, not `latest_id`.
    app.get("/artifacts/:key/latest", { schema: { params: z.strictObject({ key: z.string() }) } }, async (request) => {
      const collection = await db.artifacts.getLatest(request.params.key);
      if (!collection) throw new HttpError(404, NOT_FOUND);
      const { latest_id: _latest, ...artifact } = artifactCollectionResponse(collection);
      return artifact;
    });

    app.post("/artifacts/filter", { schema: { body: api.Body_read_artifacts_artifacts_filter_post } }, async (request) => {
      const body = request.body;
      const artifacts = await db.artifacts.read({
        artifacts: (body.artifacts ?? null) as ArtifactCriteria["artifacts"],
        ...related(body),
        sort: body.sort ?? "ID_DESC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return artifacts.map(artifactResponse);
    });

    app.post("/artifacts/latest/filter", { schema: { body: api.Body_read_latest_artifacts_artifacts_latest_filter_post } }, async (request) => {
      const body = request.body;
      const collections = await db.artifacts.readLatest({
        artifacts: (body.artifacts ?? null) as ArtifactCollectionCriteria["artifacts"],
        ...related(body),
        sort: body.sort ?? "ID_DESC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return collections.map(artifactCollectionResponse);
    });

    app.post("/artifacts/count", { schema: { body: api.Body_count_artifacts_artifacts_count_post } }, async (request) =>
      db.artifacts.count({ artifacts: (request.body.artifacts ?? null) as ArtifactCriteria["artifacts"], ...related(request.body) }),
    );

    app.post("/artifacts/latest/count", { schema: { body: api.Body_count_latest_artifacts_artifacts_latest_count_post } }, async (request) =>
      db.artifacts.countLatest({ artifacts: (request.body.artifacts ?? null) as ArtifactCollectionCriteria["artifacts"], ...related(request.body) }),
    );

    app.patch(`/artifacts/${UUID_ID}`, { schema: { params: IdParams, body: api.ArtifactUpdate } }, async (request, reply) => {
      try {
        await db.artifacts.update(request.params.id, request.body);
      } catch (error) {
        if (error instanceof NotFoundError) throw new HttpError(404, NOT_FOUND);
        throw error;
      }
      return reply.code(204).send();
    });

    app.delete(`/artifacts/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      const change = await db.transaction(async (tx) => {
        const artifact = await tx.artifacts.get(request.params.id);
        if (!artifact) throw new HttpError(404, NOT_FOUND);
        const before = artifact.key === null ? null : await tx.artifacts.getLatest(artifact.key);
        await tx.artifacts.delete(artifact.id);
        if (!before || before.latest_id !== artifact.id) return null;
        const after = await tx.artifacts.getLatest(before.key);
        return after ? { action: "updated" as const, collection: after } : { action: "deleted" as const, collection: before };
      });
      if (change) publish(change.action, change.collection);
      return reply.code(204).send();
    });
  };
}
