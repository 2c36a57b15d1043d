/** The background loops the server runs (its "services", as Prefect calls them), each unless its setting switches it off. */
import type { AppContext, Logger } from "../context.js";
import { cancellationCleanup } from "./cancellation-cleanup.js";
import { eventPersister } from "./event-persister.js";
import { foreman } from "./foreman.js";
import { lateRuns } from "./late-runs.js";
import { repossessor } from "./repossessor.js";
import { schedulers } from "./scheduler.js";
import type { Service } from "./loop.js";
import { taskRunRecorder } from "./task-run-recorder.js";
import { actionsService, triggerServices } from "./triggers.js";

export async function startLoops(context: AppContext, log: Logger): Promise<Service[]> {
  const services: Service[] = [];
  // The recorder starts first and so stops last, after the persister has stored what it held.
  if (context.settings.services.taskRunRecorder.enabled) services.push(taskRunRecorder(context, log));
  if (context.settings.services.eventPersister.enabled) services.push(eventPersister(context, log));
  if (context.settings.services.repossessor.enabled) services.push(repossessor(context, log));
  if (context.settings.services.scheduler.enabled) services.push(...schedulers(context, log));
  if (context.settings.services.lateRuns.enabled) services.push(lateRuns(context, log));
  if (context.settings.services.foreman.enabled) services.push(foreman(context, log));
  if (context.settings.services.cancellationCleanup.enabled) services.push(cancellationCleanup(context, log));
  if (context.settings.services.triggers.enabled) services.push(...triggerServices(context, log));
  if (context.settings.services.actions.enabled) services.push(actionsService(context, log));
  for (const service of services) {
    await service.start();
    log.debug({ service: service.name }, "service started");
  }
  return services;
}
