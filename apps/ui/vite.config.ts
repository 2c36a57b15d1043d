import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

// Relative asset URLs: the server sets <base href> to the path the UI is served under.
export default defineConfig({
  base: "./",
  plugins: [vue()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 5000,
    reportCompressedSize: false,
  },
  server: { proxy: { "/api": "http://127.0.0.1:4200", "/ui-settings": "http://127.0.0.1:4200" } },
});
