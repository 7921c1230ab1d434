/**
 * Turns a producer that calls `push` for each item into an async iterable. The producer never
 * waits for the reader: items queue until read, so a reader that stops reading without calling
 * `return()` cannot hold up the engine's request queue (a request's items are bounded by its
 * token limit). Errors and the end of the producer end the iteration after the queued items; a
 * reader that stops early (`break`, `return()`) resolves `cancelled` and drops what is queued.
 */
export function pushStream<T>(produce: (push: (item: T) => void, cancelled: Promise<void>) => Promise<unknown>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const items: T[] = [];
      let wake: (() => void) | undefined;
      let done = false;
      let stopped = false;
      let failure: { error: unknown } | undefined;
      let cancel!: () => void;
      const cancelled = new Promise<void>((r) => (cancel = r));
      const push = (item: T) => {
        if (stopped) return;
        items.push(item);
        wake?.();
      };
      const finished = produce(push, cancelled).then(
        () => { done = true; wake?.(); },
        (error: unknown) => { failure = { error }; done = true; wake?.(); },
      );
      return {
        async next(): Promise<IteratorResult<T>> {
          for (;;) {
            if (items.length > 0) return { value: items.shift()!, done: false };
            if (failure) throw failure.error;
            if (done) return { value: undefined, done: true };
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
          }
        },
        async return(): Promise<IteratorResult<T>> {
          stopped = true;
          items.length = 0;
          cancel();
          await finished;
          return { value: undefined, done: true };
        },
      };
    },
  };
}
