/**
 * Progress for the operator tools: anything still running after a second gets a note on stderr, so a slow
 * network check never looks like a hang. On a terminal the note is one line rewritten in place (with the
 * elapsed time) and erased before results are printed; elsewhere it is printed once as a plain line.
 */
export interface ProgressOptions {
  /** Raw writes to stderr (no newline added). */
  write: (text: string) => void;
  isTty: boolean;
  delayMs?: number;
}

export class Progress {
  readonly #write: (text: string) => void;
  readonly #isTty: boolean;
  readonly #delayMs: number;
  readonly #running = new Map<string, number>();
  readonly #announced = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #lineShown = false;

  constructor(opts: ProgressOptions) {
    this.#write = opts.write;
    this.#isTty = opts.isTty;
    this.#delayMs = opts.delayMs ?? 1000;
  }

  /** Notes on this process's stderr, rewritten in place when it is a terminal. */
  static onStderr(): Progress {
    return new Progress({
      write: (text) => process.stderr.write(text),
      isTty: process.stderr.isTTY === true,
    });
  }

  start(label: string): void {
    this.#running.set(label, Date.now());
    this.#schedule();
  }

  end(label: string): void {
    this.#running.delete(label);
    if (this.#running.size === 0) this.clear();
  }

  /** Erase the in-place line (call before printing a result). */
  clear(): void {
    if (this.#lineShown) {
      this.#write('\r\x1b[K');
      this.#lineShown = false;
    }
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#running.clear();
    this.clear();
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#isTty ? 250 : this.#delayMs / 4);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#running.size === 0) {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = null;
      return;
    }
    const now = Date.now();
    const slow = [...this.#running].filter(([, since]) => now - since >= this.#delayMs);
    if (slow.length === 0) return;
    if (this.#isTty) {
      const oldest = Math.max(...slow.map(([, since]) => now - since));
      const labels = slow.map(([label]) => label).join(', ');
      this.#write(`\r\x1b[K… ${labels} (${(oldest / 1000).toFixed(1)} s)`);
      this.#lineShown = true;
      return;
    }
    for (const [label] of slow) {
      if (this.#announced.has(label)) continue;
      this.#announced.add(label);
      this.#write(`… still waiting for ${label}\n`);
    }
  }
}
