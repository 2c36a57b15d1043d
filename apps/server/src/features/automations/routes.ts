/**
 * Prefect's Automations routes: create (201), replace (PUT, 204), enable or disable (PATCH, 204),
 * delete (204), read, filter, count, the automations related to a resource, deleting those a resource
 * owns (202), and `templates/validate` (also under `/automations/`), which takes the template itself
 * as the body: JSON text, or the raw text of any other content type.
 */
import { z } from "zod";
import type { AppContext } from "../../context.js";
import * as api from "../../generated/prefect-api.js";
import { IdParams, limitOf, UUID_ID } from "../../http/params.js";
import type { Routes } from "../../http/zod.js";
import { automationResponse } from "./responses.js";
import {
  countAutomations,
  createAutomation,
  deleteAutomation,
  deleteAutomationsOwnedBy,
  readAutomation,
  readAutomations,
  readAutomationsRelatedTo,
  replaceAutomation,
  setAutomationEnabled,
  validateTemplate,
} from "./service.js";

const ResourceParams = z.strictObject({ resource_id: z.string() });

/** Prefect's `template: str = Body(default="")`. */
const TemplateBody = z.string({ message: "Input should be a valid string" }).nullish();

export function automationRoutes(context: AppContext): Routes {
  const { db } = context;
  return async (app) => {
    app.post("/automations/", async (request, reply) => {
      const automation = await createAutomation(context, request.body);
      return reply.code(201).send(automationResponse(automation));
    });

    app.put(`/automations/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await replaceAutomation(context, request.params.id, request.body);
      return reply.code(204).send();
    });

    app.patch(`/automations/${UUID_ID}`, { schema: { params: IdParams, body: api.AutomationPartialUpdate } }, async (request, reply) => {
      await setAutomationEnabled(context, request.params.id, request.body.enabled ?? true);
      return reply.code(204).send();
    });

    app.delete(`/automations/${UUID_ID}`, { schema: { params: IdParams } }, async (request, reply) => {
      await deleteAutomation(context, request.params.id);
      return reply.code(204).send();
    });

    app.get(`/automations/${UUID_ID}`, { schema: { params: IdParams } }, async (request) => automationResponse(await readAutomation(db, request.params.id)));

    app.post("/automations/filter", { schema: { body: api.Body_read_automations_automations_filter_post } }, async (request) => {
      const body = request.body;
      const automations = await readAutomations(db, {
        automations: body.automations ?? null,
        sort: body.sort ?? "NAME_ASC",
        limit: limitOf(body.limit),
        offset: body.offset ?? 0,
      });
      return automations.map(automationResponse);
    });

    app.post("/automations/count", async () => countAutomations(db));

    app.get("/automations/related-to/:resource_id", { schema: { params: ResourceParams } }, async (request) =>
      (await readAutomationsRelatedTo(db, request.params.resource_id)).map(automationResponse),
    );

    app.delete("/automations/owned-by/:resource_id", { schema: { params: ResourceParams } }, async (request, reply) => {
      await deleteAutomationsOwnedBy(db, request.params.resource_id);
      return reply.code(202).send(null);
    });

    for (const path of ["/templates/validate", "/automations/templates/validate"]) {
      app.post(path, { schema: { body: TemplateBody } }, async (request, reply) => {
        const template = request.body ?? "";
        const problem = await validateTemplate(template);
        if (!problem) return reply.code(204).send();
        return reply.code(422).send({ error: { line: problem.line, message: problem.message, source: template } });
      });
    }
  };
}
