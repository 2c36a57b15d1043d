/**
 * The layering of the workspace, checked by `pnpm lint` (dependency-cruiser). See ARCHITECTURE.md.
 * Calls go down: app.ts -> features/<x>/routes.ts -> features/<x>/service.ts -> prefect/, packages.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "No import cycles, anywhere (type-only imports included).",
      from: {},
      to: { circular: true },
    },
    {
      name: "routes-only-from-app",
      severity: "error",
      comment: "A feature's routes are registered by apps/server/src/app.ts and imported by nothing else.",
      from: { pathNot: "^apps/server/src/app\\.ts$" },
      to: { path: "^apps/server/src/features/[^/]+/routes\\.ts$" },
    },
    {
      name: "loops-call-services",
      severity: "error",
      comment: "Background loops call feature services, never routes, the HTTP glue or the app.",
      from: { path: "^apps/server/src/loops/" },
      to: { path: "^apps/server/src/(features/[^/]+/routes\\.ts|http/|app\\.ts|server\\.ts)" },
    },
    {
      name: "features-do-not-import-loops",
      severity: "error",
      comment: "Loops run the features' services; the features never reach up into the loops.",
      from: { path: "^apps/server/src/(features|prefect|http)/" },
      to: { path: "^apps/server/src/(loops|cli)/|^apps/server/src/(server|main)\\.ts$" },
    },
    {
      name: "services-without-http",
      severity: "error",
      comment: "Only routes.ts speaks HTTP: services and the other feature modules import neither Fastify nor http/.",
      from: { path: "^apps/server/src/features/[^/]+/", pathNot: "^apps/server/src/features/[^/]+/routes\\.ts$" },
      to: { path: "^apps/server/src/http/|(^|/)node_modules/(fastify|@fastify/)" },
    },
    {
      name: "loops-without-fastify",
      severity: "error",
      comment: "Loops run without the HTTP application (the services CLI), so they do not import Fastify.",
      from: { path: "^apps/server/src/loops/" },
      to: { path: "(^|/)node_modules/(fastify|@fastify/)" },
    },
    {
      name: "context-is-a-leaf",
      severity: "error",
      comment: "context.ts holds types only: it imports nothing of the server but the settings' types.",
      from: { path: "^apps/server/src/context\\.ts$" },
      to: { path: "^apps/server/src/", pathNot: "^apps/server/src/settings\\.ts$" },
    },
    {
      name: "context-imports-types-only",
      severity: "error",
      from: { path: "^apps/server/src/context\\.ts$" },
      to: { path: "^apps/server/src/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "prefect-helpers-stand-alone",
      severity: "error",
      comment: "src/prefect/ holds Prefect's wire helpers: it imports no feature, loop, HTTP glue or entry point.",
      from: { path: "^apps/server/src/prefect/" },
      to: { path: "^apps/server/src/(features|loops|http|cli)/|^apps/server/src/(app|server|main)\\.ts$" },
    },
    {
      name: "packages-do-not-import-apps",
      severity: "error",
      from: { path: "^packages/" },
      to: { path: "^apps/" },
    },
    {
      name: "apps-do-not-import-apps",
      severity: "error",
      comment: "What two apps need lives in a package.",
      from: { path: "^apps/([^/]+)/" },
      to: { path: "^apps/", pathNot: "^apps/$1/" },
    },
  ],
  options: {
    doNotFollow: { path: "(^|/)node_modules/" },
    exclude: { path: "(^|/)(dist|coverage|generated|\\.turbo)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.base.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["@prefect/source", "import", "require", "node", "types", "default"],
      extensions: [".ts", ".tsx", ".js", ".mjs", ".cjs", ".json"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
