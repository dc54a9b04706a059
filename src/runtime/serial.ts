/**
 * Tasks that must not overlap (config reloads and what waits for them), run one after the other in the order
 * they were queued. A failed task does not stop the ones after it.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Runs `task` once every task queued before it has settled; the result is the task's own. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(task);
    this.#tail = run.catch(ignore);
    return run;
  }
}

function ignore(): void {}
