import { WebGGUFError } from '../errors.js';

/**
 * At most `limit` requests at once; waiters get a slot in the order they asked. The parts of a
 * split model share one, so the whole download never has more than `limit` requests in flight.
 */
export class RequestSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit = 4) {}

  /** Resolves with the function that gives the slot back; rejects if `signal` aborts first. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw new WebGGUFError('aborted', 'the download was aborted');
    if (this.active < this.limit) {
      this.active++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(grant), 1);
        reject(new WebGGUFError('aborted', 'the download was aborted'));
      };
      this.waiting.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the next waiter, so `active` never overshoots.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}
