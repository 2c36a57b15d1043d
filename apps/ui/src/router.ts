/**
 * The UI's routes: the library's workspace route table filled with this app's pages, plus settings,
 * the credentials prompt and a 404 page.
 */
import { createWorkspaceRouteRecords } from "@prefecthq/prefect-ui-library";
import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { basePath } from "./services/settings";

const workspaceRoutes = createWorkspaceRouteRecords({
  dashboard: () => import("./pages/Dashboard.vue"),
  runs: () => import("./pages/Runs.vue"),
  flowRun: () => import("./pages/FlowRun.vue"),
  taskRun: () => import("./pages/TaskRun.vue"),
  flows: () => import("./pages/Flows.vue"),
  flow: () => import("./pages/Flow.vue"),
  deployments: () => import("./pages/Deployments.vue"),
  deployment: () => import("./pages/Deployment.vue"),
  deploymentEdit: () => import("./pages/DeploymentEdit.vue"),
  deploymentDuplicate: () => import("./pages/DeploymentDuplicate.vue"),
  deploymentFlowRunCreate: () => import("./pages/FlowRunCreate.vue"),
  workPools: () => import("./pages/WorkPools.vue"),
  workPool: () => import("./pages/WorkPool.vue"),
  workPoolCreate: () => import("./pages/WorkPoolCreate.vue"),
  workPoolEdit: () => import("./pages/WorkPoolEdit.vue"),
  workPoolQueue: () => import("./pages/WorkPoolQueue.vue"),
  workPoolQueueCreate: () => import("./pages/WorkPoolQueueCreate.vue"),
  workPoolQueueEdit: () => import("./pages/WorkPoolQueueEdit.vue"),
  blocks: () => import("./pages/Blocks.vue"),
  blocksCatalog: () => import("./pages/BlocksCatalog.vue"),
  blocksCatalogView: () => import("./pages/BlocksCatalogView.vue"),
  blockCreate: () => import("./pages/BlockCreate.vue"),
  block: () => import("./pages/Block.vue"),
  blockEdit: () => import("./pages/BlockEdit.vue"),
  variables: () => import("./pages/Variables.vue"),
  events: () => import("./pages/Events.vue"),
  event: () => import("./pages/Event.vue"),
  artifacts: () => import("./pages/Artifacts.vue"),
  artifact: () => import("./pages/Artifact.vue"),
  artifactKey: () => import("./pages/ArtifactKey.vue"),
  concurrencyLimits: () => import("./pages/ConcurrencyLimits.vue"),
  concurrencyLimit: () => import("./pages/ConcurrencyLimit.vue"),
  concurrencyLimitsV2: () => import("./pages/ConcurrencyLimits.vue"),
  concurrencyLimitV2: () => import("./pages/ConcurrencyLimitV2.vue"),
  automations: () => import("./pages/Automations.vue"),
  automation: () => import("./pages/Automation.vue"),
  automationCreate: () => import("./pages/AutomationCreate.vue"),
  automationEdit: () => import("./pages/AutomationEdit.vue"),
});

const routes: RouteRecordRaw[] = [
  {
    path: "/",
    children: [
      { path: "", name: "root", redirect: { name: "workspace.dashboard" } },
      ...(workspaceRoutes as RouteRecordRaw[]),
      { path: "settings", name: "settings", component: () => import("./pages/Settings.vue") },
      { path: "login", name: "login", meta: { public: true }, component: () => import("./pages/Login.vue") },
    ],
  },
  { path: "/:pathMatch(.*)*", name: "404", component: () => import("./pages/NotFound.vue") },
];

export function createAppRouter() {
  return createRouter({ history: createWebHistory(basePath()), routes });
}
