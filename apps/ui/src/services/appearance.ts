/** The colour mode the user chose in the settings (kept in this browser), applied to the page. */
import { applyColorModeClass, type ColorMode, isColorMode } from "@prefecthq/prefect-ui-library";
import { computed, ref } from "vue";

const KEY = "prefect-color-mode";
const stored = localStorage.getItem(KEY);
const chosen = ref<ColorMode | null>(isColorMode(stored) ? stored : null);

export const colorMode = computed({
  get: () => chosen.value,
  set(value: ColorMode | null) {
    chosen.value = value;
    if (value) localStorage.setItem(KEY, value);
    else localStorage.removeItem(KEY);
    applyColorModeClass(value);
  },
});
