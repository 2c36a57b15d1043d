/**
 * Artifacts: create, read, filter, count, update and delete, and the latest artifact of each key
 * (Prefect's artifact collections): read by key, filter and count. Changes to a collection publish
 * Prefect's `prefect.artifact-collection.*` lifecycle events.
 */
import type { Artifact, ArtifactCollection, ArtifactCollectionCriteria, ArtifactCriteria } from "@prefect/db";
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, limitOf, UUID_ID, valueError } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import {
  countArtifacts,
  countLatestArtifacts,
  createArtifact,
  deleteArtifact,
  readArtifact,
  readArtifacts,
  readLatestArtifact,
  readLatestArtifacts,
  updateArtifact,
} from "./service.js";

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

export function artifactRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/artifacts/", { schema: { body: ArtifactCreateBody } }, async (request, reply) => {
      return reply.code(201).send(artifactResponse(await createArtifact(context, request.body)));
    });

    app.get(`/artifacts/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => {
      return artifactResponse(await readArtifact(db, request.params.id));
    });

    // As in Prefect, the collection is shown as an artifact: its own id, not `latest_id`.
    app.get("/artifacts/:key/latest", { schema: { params: z.strictObject({ key: z.string() }) } }, async (request) => {
      const { latest_id: _latest, ...artifact } = artifactCollectionResponse(await readLatestArtifact(db, request.params.key));
      return artifact;
    });

    app.post("/artifacts/filter", { schema: { body: api.Body_read_artifacts_artifacts_filter_post } }, async (request) => {
      const body = request.body;
      const artifacts = await readArtifacts(db, {
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
      const collections = await readLatestArtifacts(db, {
        artifacts: (body.artifacts ?? null) as ArtifactCollectionCriteria["artifacts"],
        ...related(body),
        sort: body.sort ?? "ID_DESC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return collections.map(artifactCollectionResponse);
    });

    app.post("/artifacts/count", { schema: { body: api.Body_count_artifacts_artifacts_count_post } }, async (request) =>
      countArtifacts(db, { artifacts: (request.body.artifacts ?? null) as ArtifactCriteria["artifacts"], ...related(request.body) }),
    );

    app.post("/artifacts/latest/count", { schema: { body: api.Body_count_latest_artifacts_artifacts_latest_count_post } }, async (request) =>
      countLatestArtifacts(db, { artifacts: (request.body.artifacts ?? null) as ArtifactCollectionCriteria["artifacts"], ...related(request.body) }),
    );

    app.patch(`/artifacts/${UUID_ID}`, { schema: { params: IdParams, body: api.ArtifactUpdate } }, async (request, reply) => {
      await updateArtifact(db, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.delete(`/artifacts/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteArtifact(context, request.params.id);
      return reply.code(204).send();
    });
  };
}
