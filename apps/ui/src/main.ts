import { plugin as PrefectDesign } from "@prefecthq/prefect-design";
import { applyColorModeClass, plugin as PrefectUILibrary } from "@prefecthq/prefect-ui-library";
import { createApp } from "vue";
import "@prefecthq/vue-charts/vue-charts.css";
import "@prefecthq/prefect-design/prefect-design.css";
import "@prefecthq/prefect-ui-library/prefect-ui-library.css";
import "./styles.css";
import App from "./App.vue";
import { createAppRouter } from "./router";
import { colorMode } from "./services/appearance";

applyColorModeClass(colorMode.value);

const app = createApp(App);
app.use(createAppRouter());
app.use(PrefectDesign);
app.use(PrefectUILibrary);
app.mount("#app");
