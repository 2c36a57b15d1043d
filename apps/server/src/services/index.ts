/** The background services the server runs, each unless its setting switches it off. */
import type { FastifyBaseLogger } from "fastify";
import type { AppContext } from "../app.js";
import { eventPersister } from "./event-persister.js";
import type { Service } from "./service.js";
import { taskRunRecorder } from "./task-run-recorder.js";

export async function startServices(context: AppContext, log: FastifyBaseLogger): Promise<Service[]> {
  const services: Service[] = [];
  if (context.settings.services.eventPersister.enabled) services.push(eventPersister(context, log));
  if (context.settings.services.taskRunRecorder.enabled) services.push(taskRunRecorder(context, log));
  for (const service of services) {
    await service.start();
    log.debug({ service: service.name }, "service started");
  }
  return services;
}
