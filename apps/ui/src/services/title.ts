import { type MaybeRefOrGetter, toValue, watchEffect } from "vue";

/** Keeps the browser tab's title on the page shown. */
export function usePageTitle(title: MaybeRefOrGetter<string>): void {
  watchEffect(() => {
    document.title = `${toValue(title)} • Prefect`;
  });
}
