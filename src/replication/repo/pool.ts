/** Runs async work over a list with at most `limit` tasks in flight; stops taking new items once aborted. */
export async function runPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && !signal?.aborted) {
      const item = items[next++];
      await work(item);
    }
  });
  await Promise.all(workers);
}
