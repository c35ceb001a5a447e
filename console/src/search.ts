import { watch } from 'vue';

/**
 * A search box that reads the list again once typing pauses, from the first
 * page (the page the user was on may not exist for the new search).
 */
export function searchFromFirstPage(q: { search: string; page: number }, load: () => Promise<void>, delayMs = 250): void {
  let timer: number | undefined;
  watch(
    () => q.search,
    () => {
      clearTimeout(timer);
      timer = window.setTimeout(() => {
        if (q.page !== 1) q.page = 1;
        else void load();
      }, delayMs);
    },
  );
}
